package io.kvass.bench;

import io.kvass.scheduler.core.Request;
import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.scheduler.engine.LocalEngine;
import io.kvass.worker.ModelReplica;
import io.kvass.worker.ReplicaOptions;
import io.kvass.worker.sampling.SamplingParams;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * Engine throughput against the number of concurrent sequences: N requests (random prompts of
 * {@code promptLen} tokens, {@code outputLen} tokens each, EOS ignored) submitted together and run
 * to completion through the scheduler, model runner and backend. Prints one JSON line per N.
 *
 * <pre>java ... io.kvass.bench.EngineThroughputBenchmark MODEL_DIR [concurrency,...] [promptLen] [outputLen]</pre>
 */
public final class EngineThroughputBenchmark {
    private EngineThroughputBenchmark() {
    }

    public static void main(String[] args) {
        Path model = Path.of(args[0]);
        int[] concurrency = args.length > 1 ? Arrays.stream(args[1].split(",")).mapToInt(Integer::parseInt).toArray()
                : new int[] {1, 4, 16, 64};
        int promptLen = args.length > 2 ? Integer.parseInt(args[2]) : 32;
        int outputLen = args.length > 3 ? Integer.parseInt(args[3]) : 32;
        int maxSeqs = Arrays.stream(concurrency).max().orElse(1);
        ReplicaOptions options = new ReplicaOptions(model, ReplicaOptions.Device.CPU, 16, 2L << 30,
                promptLen + outputLen, maxSeqs, Runtime.getRuntime().availableProcessors());
        try (ModelReplica replica = ModelReplica.load(options)) {
            SchedulerConfig config = new SchedulerConfig(maxSeqs, 2048, replica.maxModelLen(), SchedulingPolicy.FCFS, false);
            run(replica, config, 1, promptLen, 4); // warm-up: JIT the kernels before timing
            for (int n : concurrency) {
                run(replica, config, n, promptLen, outputLen);
            }
        }
    }

    private static void run(ModelReplica replica, SchedulerConfig config, int n, int promptLen, int outputLen) {
        LocalEngine engine = LocalEngine.of(replica.backend(), replica.tokenizer(), config);
        SplittableRandom random = new SplittableRandom(n);
        SamplingParams params = SamplingParams.builder().temperature(0).maxTokens(outputLen).ignoreEos(true).build();
        List<Request> requests = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int[] prompt = random.ints(promptLen, 0, replica.model().config().vocabSize()).toArray();
            requests.add(Request.of("r" + i, prompt, params));
        }
        requests.forEach(engine.core()::add);
        long start = System.nanoTime();
        long firstDecodeStep = 0;
        int outputTokens = 0;
        int steps = 0;
        while (engine.core().hasWork()) {
            int produced = engine.step().size();
            outputTokens += produced;
            steps++;
            if (firstDecodeStep == 0 && engine.core().scheduler().numWaiting() == 0 && produced == n) {
                firstDecodeStep = System.nanoTime(); // every prompt prefilled; decode-only from here
            }
        }
        long end = System.nanoTime();
        double seconds = (end - start) / 1e9;
        double decodeSeconds = (end - firstDecodeStep) / 1e9;
        System.out.printf(Locale.ROOT, "{\"concurrency\":%d,\"prompt_len\":%d,\"output_len\":%d,\"steps\":%d,"
                        + "\"seconds\":%.3f,\"output_tokens_per_s\":%.2f,\"decode_tokens_per_s\":%.2f}%n",
                n, promptLen, outputLen, steps, seconds, outputTokens / seconds,
                (outputTokens - n) / Math.max(decodeSeconds, 1e-9));
    }
}
