package io.kvass.http;

import io.kvass.kvpaging.CacheScope;
import io.kvass.scheduler.core.AdapterGate;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.lora.AdapterDevice;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.lora.LoraOptions;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.ReferenceCase;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The llama-gqa reference model made servable, and what it generates offline. The fixture has no
 * tokenizer; stories260K's has the same 512 ids (and BOS 1, EOS 2), so a copy of it goes next to
 * links to the weights. Served output is compared with an offline {@link LocalEngine} run of the same
 * adapters (PEFT's adapter references used unrounded RoPE frequencies; see CpuLoraReferenceTest).
 */
final class LoraFixture {
    static final String VARIANT = "llama-gqa";
    static final String MODEL = "llama-gqa";
    static final int MAX_TOKENS = 24;
    static final List<String> TAGS = List.of("base", "adapter-a", "adapter-b");

    private LoraFixture() {
    }

    static Path adapter(String tag) {
        return Fixtures.reference(VARIANT).resolve(tag);
    }

    /** {@code dir/model}: links to llama-gqa's config and weights, and a copy of stories260K's tokenizer. */
    static Path modelDir(Path dir) {
        try {
            Path model = Files.createDirectories(dir.resolve("model"));
            for (String f : List.of("config.json", "generation_config.json", "model.safetensors")) {
                Files.createSymbolicLink(model.resolve(f), Fixtures.reference(VARIANT).resolve(f));
            }
            for (String f : List.of("tokenizer.json", "tokenizer_config.json")) {
                Files.copy(Fixtures.stories260K().resolve(f), model.resolve(f));
            }
            return model;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** A copy of a fixture adapter under {@code root/name}, its config edited by {@code edit} (a JSON text replacement). */
    static Path adapterCopy(Path root, String name, String tag, String from, String to) {
        try {
            Path dir = Files.createDirectories(root.resolve(name));
            String config = Files.readString(adapter(tag).resolve(LoraLoader.CONFIG));
            if (!from.isEmpty() && !config.contains(from)) {
                throw new IllegalArgumentException(tag + "'s config has no '" + from + "'");
            }
            Files.writeString(dir.resolve(LoraLoader.CONFIG), from.isEmpty() ? config : config.replace(from, to));
            Files.copy(adapter(tag).resolve(LoraLoader.WEIGHTS), dir.resolve(LoraLoader.WEIGHTS));
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The reference prompts (token ids), the same for every tag. */
    static List<int[]> prompts() {
        return ReferenceCase.load(VARIANT, "base").stream().map(ReferenceCase.Prompt::ids).toList();
    }

    /** The base model's greedy ids per prompt: transformers' reference, an oracle independent of kvass. */
    static List<int[]> baseReference() {
        return ReferenceCase.load(VARIANT, "base").stream().map(ReferenceCase.Prompt::greedy).toList();
    }

    /** Offline greedy output per tag ({@code base}, {@code adapter-a}, ...), one entry per prompt. */
    record Offline(Map<String, List<String>> texts, Map<String, List<int[]>> ids) {
    }

    /** Greedy output of every prompt under every tag, generated offline in one batch. */
    static Offline offline(Path modelDir) {
        LoraOptions lora = LoraOptions.of(2, 8, List.of(Fixtures.root()));
        try (ModelReplica replica = ModelReplica.load(new ReplicaOptions(modelDir, ReplicaOptions.Device.CPU, 16,
                64L << 20, 0, 16, 1), lora.device())) {
            AdapterManager adapters = new AdapterManager(replica.model().config(), lora,
                    AdapterDevice.of(replica.backend()), Runnable::run);
            Map<String, CacheScope> scopes = new LinkedHashMap<>();
            scopes.put("base", CacheScope.BASE);
            for (String tag : TAGS.subList(1, TAGS.size())) {
                scopes.put(tag, new CacheScope(adapters.register(tag, adapter(tag)).id(), ""));
            }
            LocalEngine engine = LocalEngine.of(replica.backend(), replica.tokenizer(),
                    new SchedulerConfig(16, 2048, replica.maxModelLen(), SchedulingPolicy.FCFS, true),
                    AdapterGate.managed(adapters));
            List<int[]> prompts = prompts();
            List<Request> requests = new ArrayList<>();
            SamplingParams greedy = SamplingParams.greedy(MAX_TOKENS).toBuilder().ignoreEos(true).build();
            scopes.forEach((tag, scope) -> {
                for (int i = 0; i < prompts.size(); i++) {
                    requests.add(new Request(tag + "/" + i, prompts.get(i), greedy, scope, 0, 0, System.nanoTime()));
                }
            });
            Map<String, StringBuilder> texts = new HashMap<>();
            Map<String, List<Integer>> ids = new HashMap<>();
            for (RequestOutput o : engine.generate(requests)) {
                texts.computeIfAbsent(o.requestId(), k -> new StringBuilder()).append(o.text());
                o.tokens().forEach(t -> ids.computeIfAbsent(o.requestId(), k -> new ArrayList<>()).add(t.tokenId()));
            }
            Map<String, List<String>> textOut = new HashMap<>();
            Map<String, List<int[]>> idOut = new HashMap<>();
            for (String tag : TAGS) {
                List<String> t = new ArrayList<>();
                List<int[]> d = new ArrayList<>();
                for (int i = 0; i < prompts.size(); i++) {
                    t.add(texts.get(tag + "/" + i).toString());
                    d.add(ids.get(tag + "/" + i).stream().mapToInt(Integer::intValue).toArray());
                }
                textOut.put(tag, t);
                idOut.put(tag, d);
            }
            return new Offline(textOut, idOut);
        }
    }
}
