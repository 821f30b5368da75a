package io.kvass.cluster.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
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
import io.kvass.worker.lora.AdapterLoadException;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.AdapterSpec;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraOptions;
import io.kvass.worker.sampling.SamplingParams;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * {@code kvass generate}: offline generation of all given prompts together, as one continuous batch,
 * through the same scheduler and backend that serve HTTP requests; {@code --adapter DIR} applies one
 * PEFT LoRA adapter to every prompt.
 */
public final class GenerateCommand {
    static final Set<String> VALUED = Set.of("model", "adapter", "prompt", "prompt-ids", "max-tokens", "temperature",
            "top-p", "top-k", "min-p", "seed", "stop", "device", "max-model-len", "max-num-seqs",
            "max-num-batched-tokens", "block-size", "kv-cache-memory", "gpu-memory-utilization", "threads",
            "cpu-weights", "cpu-weight-format", "repetition-penalty", "max-lora-rank");
    /** vLLM's default {@code --max-lora-rank}. */
    static final int DEFAULT_MAX_LORA_RANK = 16;
    static final Set<String> SWITCHES = Set.of("json", "ignore-eos");

    private GenerateCommand() {
    }

    public static void run(String[] args, PrintStream out) {
        CliArgs a = CliArgs.parse(args, 1, VALUED, SWITCHES);
        if (a.has("max-lora-rank") && !a.has("adapter")) {
            throw new CliException("--max-lora-rank applies to --adapter only");
        }
        if (!a.has("prompt") && !a.has("prompt-ids")) {
            throw new CliException("give at least one --prompt TEXT or --prompt-ids 1,2,3");
        }
        SamplingParams params = samplingParams(a);
        int maxNumSeqs = a.intValue("max-num-seqs", 256);
        ReplicaOptions options = Options.replica(a, maxNumSeqs);
        int maxRank = a.intValue("max-lora-rank", DEFAULT_MAX_LORA_RANK);
        if (maxRank < 1) {
            throw new CliException("--max-lora-rank must be at least 1, got " + maxRank);
        }
        LoraCapacity lora = a.has("adapter") ? new LoraCapacity(1, maxRank) : LoraCapacity.NONE;
        try (ModelReplica replica = ModelReplica.load(options, lora)) {
            List<int[]> prompts = new ArrayList<>();
            for (var prompt : a.inOrder(Set.of("prompt", "prompt-ids"))) {
                prompts.add(prompt.getKey().equals("prompt")
                        ? replica.tokenizer().encode(prompt.getValue(), true) : parseIds(prompt.getValue()));
            }
            SchedulerConfig config = new SchedulerConfig(maxNumSeqs, a.intValue("max-num-batched-tokens", 2048),
                    replica.maxModelLen(), SchedulingPolicy.FCFS, true);
            Adapter adapter = a.has("adapter") ? Adapter.load(replica, lora, adapterDir(a)) : Adapter.NONE;
            LocalEngine engine = LocalEngine.of(replica.backend(), replica.tokenizer(), config, adapter.gate());
            List<Request> requests = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                requests.add(new Request("prompt-" + i, prompts.get(i), params, adapter.scope(), 0, 0, System.nanoTime()));
            }
            List<Completion> completions = collect(engine, requests);
            ObjectMapper json = new ObjectMapper();
            for (int i = 0; i < prompts.size(); i++) {
                Completion c = completions.get(i);
                if (a.has("json")) {
                    ObjectNode line = json.createObjectNode();
                    line.set("prompt_ids", json.valueToTree(prompts.get(i)));
                    line.set("token_ids", json.valueToTree(c.tokenIds.stream().mapToInt(Integer::intValue).toArray()));
                    line.put("text", c.text.toString());
                    line.put("finish_reason", c.finishReason);
                    out.println(line);
                } else {
                    out.println("--- prompt " + i + " " + Arrays.toString(prompts.get(i)) + " (" + c.finishReason + ")");
                    out.println(c.text);
                }
            }
        }
    }

    private static Path adapterDir(CliArgs a) {
        try {
            return Path.of(a.require("adapter"));
        } catch (java.nio.file.InvalidPathException e) {
            throw new CliException("--adapter: not a valid path: " + e.getMessage());
        }
    }

    /** What every request runs with: the base model, or the one adapter of {@code --adapter}. */
    private record Adapter(AdapterGate gate, CacheScope scope) {
        static final Adapter NONE = new Adapter(AdapterGate.FIXED_SLOTS, CacheScope.BASE);

        /** Reads and checks the adapter now (a bad one is a {@link CliException} naming the problem). */
        static Adapter load(ModelReplica replica, LoraCapacity capacity, Path dir) {
            AdapterManager adapters = new AdapterManager(replica.model().config(),
                    new LoraOptions(capacity, 1, List.of(dir)), AdapterDevice.of(replica.backend()), Runnable::run);
            Path name = dir.toAbsolutePath().normalize().getFileName();
            AdapterSpec spec;
            try {
                spec = adapters.register(name == null ? "adapter" : name.toString(), dir);
            } catch (AdapterLoadException e) {
                throw new CliException("--adapter: " + e.getMessage());
            }
            return new Adapter(AdapterGate.managed(adapters), new CacheScope(spec.id(), ""));
        }
    }

    /** One completion's tokens and text, accumulated from its streamed outputs. */
    private static final class Completion {
        final List<Integer> tokenIds = new ArrayList<>();
        final StringBuilder text = new StringBuilder();
        String finishReason = "";
    }

    private static List<Completion> collect(LocalEngine engine, List<Request> requests) {
        List<Completion> completions = new ArrayList<>();
        requests.forEach(r -> completions.add(new Completion()));
        for (RequestOutput o : engine.generate(requests)) {
            Completion c = completions.get(Integer.parseInt(o.requestId().substring("prompt-".length())));
            o.tokens().forEach(t -> c.tokenIds.add(t.tokenId()));
            c.text.append(o.text());
            o.finish().ifPresent(f -> c.finishReason = f.reason().apiName());
        }
        return completions;
    }

    static SamplingParams samplingParams(CliArgs a) {
        SamplingParams.Builder b = SamplingParams.builder()
                .maxTokens(a.intValue("max-tokens", 16))
                .temperature(a.floatValue("temperature", 1.0f))
                .topP(a.floatValue("top-p", 1.0f))
                .topK(a.intValue("top-k", 0))
                .minP(a.floatValue("min-p", 0f))
                .repetitionPenalty(a.floatValue("repetition-penalty", 1f))
                .ignoreEos(a.has("ignore-eos"))
                .stop(a.all("stop"));
        a.get("seed").ifPresent(s -> b.seed(CliArgs.parseLong("seed", s)));
        try {
            return b.build();
        } catch (IllegalArgumentException e) {
            throw new CliException(e.getMessage());
        }
    }

    static int[] parseIds(String csv) {
        try {
            return Arrays.stream(csv.split(",")).map(String::trim).mapToInt(Integer::parseInt).toArray();
        } catch (NumberFormatException e) {
            throw new CliException("--prompt-ids expects comma-separated integers, got '" + csv + "'");
        }
    }
}
