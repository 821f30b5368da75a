package io.kvass.cluster.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.sampling.SamplingParams;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;

/**
 * {@code kvass generate}: offline generation of all given prompts together, as one continuous batch,
 * through the same scheduler and backend that serve HTTP requests.
 */
public final class GenerateCommand {
    static final Set<String> VALUED = Set.of("model", "adapter", "prompt", "prompt-ids", "max-tokens", "temperature",
            "top-p", "top-k", "min-p", "seed", "stop", "device", "max-model-len", "max-num-seqs",
            "max-num-batched-tokens", "block-size", "kv-cache-memory", "gpu-memory-utilization", "threads",
            "repetition-penalty");
    static final Set<String> SWITCHES = Set.of("json", "ignore-eos");

    private GenerateCommand() {
    }

    public static void run(String[] args, PrintStream out) {
        CliArgs a = CliArgs.parse(args, 1, VALUED, SWITCHES);
        if (a.has("adapter")) {
            throw new CliException("--adapter: LoRA adapters are not supported by this build yet");
        }
        if (!a.has("prompt") && !a.has("prompt-ids")) {
            throw new CliException("give at least one --prompt TEXT or --prompt-ids 1,2,3");
        }
        SamplingParams params = samplingParams(a);
        int maxNumSeqs = a.intValue("max-num-seqs", 256);
        ReplicaOptions options = Options.replica(a, maxNumSeqs);
        try (ModelReplica replica = ModelReplica.load(options)) {
            List<int[]> prompts = new ArrayList<>();
            for (var prompt : a.inOrder(Set.of("prompt", "prompt-ids"))) {
                prompts.add(prompt.getKey().equals("prompt")
                        ? replica.tokenizer().encode(prompt.getValue(), true) : parseIds(prompt.getValue()));
            }
            SchedulerConfig config = new SchedulerConfig(maxNumSeqs, a.intValue("max-num-batched-tokens", 2048),
                    replica.maxModelLen(), SchedulingPolicy.FCFS, true);
            LocalEngine engine = LocalEngine.of(replica.backend(), replica.tokenizer(), config);
            List<Request> requests = new ArrayList<>();
            for (int i = 0; i < prompts.size(); i++) {
                requests.add(Request.of("prompt-" + i, prompts.get(i), params));
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
