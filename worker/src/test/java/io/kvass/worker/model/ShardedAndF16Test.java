package io.kvass.worker.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.GreedyRunner;
import io.kvass.worker.testing.ReferenceCase;
import io.kvass.worker.testing.SafeTensorsWriter;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A sharded checkpoint (index + two files) and an f16 checkpoint of stories260K load and run. */
class ShardedAndF16Test {
    @TempDir
    Path tmp;

    private static List<Tensor> storiesTensors(Arena arena) {
        SafeTensorsFile file = SafeTensorsFile.open(Fixtures.stories260K().resolve("model.safetensors"), arena);
        return file.names().stream().sorted().map(n -> file.find(n).orElseThrow()).toList();
    }

    private Path modelDirWith(String name) throws IOException {
        Path dir = Files.createDirectory(tmp.resolve(name));
        for (String f : List.of("config.json", "tokenizer.json", "tokenizer_config.json")) {
            Files.copy(Fixtures.stories260K().resolve(f), dir.resolve(f));
        }
        return dir;
    }

    private static int[] golden() throws IOException {
        return ReferenceCase.ints(new ObjectMapper().readTree(Fixtures.stories260K().resolve("expected.json").toFile())
                .path("greedy_ids"));
    }

    private static int[] greedy(Path dir, int steps) {
        try (LoadedModel model = LoadedModel.load(dir); CpuBackend backend = new CpuBackend(model, 32, 16, 2)) {
            return GreedyRunner.run(backend, List.of(new int[] {1}), steps).getFirst().greedy();
        }
    }

    @Test
    void shardedIndexLoadsAndReproducesTheGoldenIds() throws IOException {
        Path dir = modelDirWith("sharded");
        try (Arena arena = Arena.ofConfined()) {
            List<Tensor> all = storiesTensors(arena);
            List<Tensor> first = new ArrayList<>(all.subList(0, all.size() / 2));
            List<Tensor> second = new ArrayList<>(all.subList(all.size() / 2, all.size()));
            SafeTensorsWriter.write(dir.resolve("model-00001-of-00002.safetensors"), first, DType.F32);
            SafeTensorsWriter.write(dir.resolve("model-00002-of-00002.safetensors"), second, DType.F32);
            ObjectMapper json = new ObjectMapper();
            ObjectNode index = json.createObjectNode();
            ObjectNode map = index.putObject("weight_map");
            first.forEach(t -> map.put(t.name(), "model-00001-of-00002.safetensors"));
            second.forEach(t -> map.put(t.name(), "model-00002-of-00002.safetensors"));
            Files.writeString(dir.resolve("model.safetensors.index.json"), index.toString());
        }
        assertArrayEquals(golden(), greedy(dir, 200));
    }

    @Test
    void f16CheckpointLoadsWithinF16Precision() throws IOException {
        Path dir = modelDirWith("f16");
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsWriter.write(dir.resolve("model.safetensors"), storiesTensors(arena), DType.F16);
        }
        try (LoadedModel model = LoadedModel.load(dir)) {
            assertEquals(DType.F16, model.tensors().embedding().dtype());
        }
        int[] ids = greedy(dir, 30);
        int[] expected = java.util.Arrays.copyOf(golden(), 30);
        int same = 0;
        while (same < 30 && ids[same] == expected[same]) {
            same++;
        }
        assertTrue(same >= 10, "f16 weights should follow the fp32 greedy path for a while, matched " + same);
    }

    @Test
    void shardIndexNamingAMissingFileIsAClearError() throws IOException {
        Path dir = modelDirWith("broken");
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\":{\"model.norm.weight\":\"model-00009.safetensors\"}}");
        String message = org.junit.jupiter.api.Assertions.assertThrows(ModelLoadException.class,
                () -> LoadedModel.load(dir).close()).getMessage();
        assertTrue(message.contains("model-00009.safetensors"), message);
    }
}
