package io.kvass.worker.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.Iterator;
import java.util.Map;
import java.util.Optional;

/** Weights of a Hugging Face model directory: {@code model.safetensors} or a sharded index. */
public final class SafeTensorsWeights implements WeightSource {
    static final String SINGLE = "model.safetensors";
    static final String INDEX = "model.safetensors.index.json";

    private final Path dir;
    private final Arena arena = Arena.ofShared();
    private final Map<String, Tensor> tensors = new HashMap<>();

    private SafeTensorsWeights(Path dir) {
        this.dir = dir;
    }

    public static boolean present(Path dir) {
        return Files.isRegularFile(dir.resolve(SINGLE)) || Files.isRegularFile(dir.resolve(INDEX));
    }

    public static SafeTensorsWeights open(Path dir) {
        SafeTensorsWeights weights = new SafeTensorsWeights(dir);
        try {
            if (Files.isRegularFile(dir.resolve(INDEX))) {
                weights.addShards(dir.resolve(INDEX));
            } else if (Files.isRegularFile(dir.resolve(SINGLE))) {
                weights.add(SafeTensorsFile.open(dir.resolve(SINGLE), weights.arena));
            } else {
                throw new ModelLoadException("no " + SINGLE + " or " + INDEX + " in " + dir);
            }
            return weights;
        } catch (RuntimeException e) {
            weights.close();
            throw e;
        }
    }

    private void addShards(Path index) {
        JsonNode map;
        try {
            map = new ObjectMapper().readTree(index.toFile()).path("weight_map");
        } catch (IOException e) {
            throw new ModelLoadException("cannot parse " + index + ": " + e.getMessage(), e);
        }
        if (!map.isObject() || map.isEmpty()) {
            throw new ModelLoadException(index + " has no weight_map");
        }
        Map<String, SafeTensorsFile> shards = new HashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String file = e.getValue().asText();
            Path shardPath = dir.resolve(file).normalize();
            if (!shardPath.startsWith(dir.normalize()) || !Files.isRegularFile(shardPath)) {
                throw new ModelLoadException(index + " names shard '" + file + "', which is not a file in " + dir);
            }
            SafeTensorsFile shard = shards.computeIfAbsent(file, f -> SafeTensorsFile.open(shardPath, arena));
            tensors.put(e.getKey(), shard.find(e.getKey()).orElseThrow(() -> new ModelLoadException(
                    index + " says '" + e.getKey() + "' is in " + file + ", but it is not")));
        }
    }

    private void add(SafeTensorsFile file) {
        for (String name : file.names()) {
            tensors.put(name, file.find(name).orElseThrow());
        }
    }

    @Override
    public Optional<Tensor> find(String name) {
        return Optional.ofNullable(tensors.get(name));
    }

    @Override
    public String describe() {
        return dir.toString();
    }

    @Override
    public void close() {
        arena.close();
    }
}
