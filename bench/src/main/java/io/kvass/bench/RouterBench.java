package io.kvass.bench;

import io.kvass.kvpaging.BlockHasher;
import io.kvass.kvpaging.CacheScope;
import io.kvass.kvpaging.PrefixCacheUpdate;
import io.kvass.kvpaging.PromptBlockHashes;
import io.kvass.scheduler.router.AdapterTier;
import io.kvass.scheduler.router.LoadReport;
import io.kvass.scheduler.router.LoadView;
import io.kvass.scheduler.router.PrefixAwarePolicy;
import io.kvass.scheduler.router.RoundRobinPolicy;
import io.kvass.scheduler.router.RouteDecision;
import io.kvass.scheduler.router.RouteRequest;
import io.kvass.scheduler.router.RouterSettings;
import java.util.HashMap;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The router's decision time (issue 13's goal: under 20 µs with 64 replicas and a 1,000-token prompt).
 *
 * <p>The view: {@value #REPLICAS} replicas of one model, block size {@value #BLOCK_SIZE}, each holding
 * {@value #BLOCKS_PER_REPLICA} prefix blocks: {@value #STEMS_PER_REPLICA} of {@value #STEMS} shared 512-token
 * system prompts (32 blocks each, so each stem is on ~{@value #STEMS_PER_REPLICA}*64/{@value #STEMS} replicas)
 * and the rest their own conversations' blocks; random loads, free KV blocks and adapter residency (8 adapters,
 * 0-3 on a device slot and 0-3 in host memory per replica). The request: 1,000 tokens, under adapter 3, whose first
 * 512 tokens are a stem that {@code holders} replicas hold (half of them all 32 blocks, half the first 16).
 *
 * <p>{@link #pick} decides for a request hashed beforehand (what a retry from the admission queue costs);
 * {@link #hashAndPick} hashes the prompt first (62 SHA-256 block hashes, what a new request costs); {@link #hash}
 * is the hashing alone; {@link #roundRobin} the baseline policy's pick.
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 3, time = 1)
@Fork(value = 3, jvmArgsAppend = {"-Xmx2g"})
public class RouterBench {
    private static final int REPLICAS = 64;
    private static final int BLOCK_SIZE = 16;
    private static final int STEMS = 256;
    private static final int STEM_TOKENS = 512;
    private static final int STEMS_PER_REPLICA = 40;
    private static final int BLOCKS_PER_REPLICA = 4096;
    private static final int PROMPT_TOKENS = 1000;
    private static final String MODEL = "llama-3.1-8b";
    private static final CacheScope SCOPE = new CacheScope(3, "");

    /** Replicas holding the request's 512-token stem. */
    @Param({"8", "64"})
    int holders;

    private LoadView view;
    private final PrefixAwarePolicy policy = new PrefixAwarePolicy();
    private final RoundRobinPolicy roundRobin = new RoundRobinPolicy();
    private final BlockHasher hasher = new BlockHasher();
    private int[] prompt;
    private RouteRequest hashed;

    @Setup
    public void build() {
        Random random = new Random(42);
        RouterSettings settings = RouterSettings.defaults().withMaxQueuedPerReplica(1 << 20);
        view = new LoadView("gw-0", settings);
        long[][] stems = new long[STEMS][];
        for (int s = 0; s < STEMS; s++) {
            stems[s] = PromptBlockHashes.of(hasher, stemTokens(s), STEM_TOKENS, BLOCK_SIZE, SCOPE);
        }
        for (int r = 0; r < REPLICAS; r++) {
            long[] held = new long[2 * BLOCKS_PER_REPLICA];
            int n = 0;
            if (r < holders) {
                int blocks = r % 2 == 0 ? stems[0].length / 2 : stems[0].length / 4; // all 32 blocks, or 16
                System.arraycopy(stems[0], 0, held, 0, 2 * blocks);
                n += 2 * blocks;
            }
            for (int k = 0; k < STEMS_PER_REPLICA && n + stems[1].length <= held.length; k++) {
                long[] stem = stems[1 + random.nextInt(STEMS - 1)];
                System.arraycopy(stem, 0, held, n, stem.length);
                n += stem.length;
            }
            while (n < held.length) {
                held[n++] = random.nextLong() | 1; // never the root (0, 0)
            }
            Map<Long, AdapterTier> adapters = new HashMap<>();
            for (int a = 0; a < random.nextInt(4); a++) {
                adapters.put((long) random.nextInt(8), AdapterTier.DEVICE);
            }
            for (int a = 0; a < random.nextInt(4); a++) {
                adapters.putIfAbsent((long) random.nextInt(8), AdapterTier.HOST);
            }
            int running = random.nextInt(64);
            LoadReport report = new LoadReport("replica-" + r, "pekko://kvass@10.0." + r / 8 + "." + r % 8 + ":2551",
                    MODEL, 1, 0, 0, BLOCK_SIZE, 2_000 + random.nextInt(30_000), 32_768, running,
                    running > 48 ? random.nextInt(4) : 0, 64, adapters, Map.of(), new PrefixCacheUpdate.Snapshot(held),
                    true);
            view.apply(report, 0);
        }
        prompt = IntStream.range(0, PROMPT_TOKENS)
                .map(i -> i < STEM_TOKENS ? stemTokens(0)[i] : 500_000 + random.nextInt(100_000)).toArray();
        hashed = request();
        if (!(policy.pick(hashed, view, 0) instanceof RouteDecision.Send send) || send.matchedTokens() != STEM_TOKENS) {
            throw new IllegalStateException("the setup should route to a replica holding the whole stem");
        }
    }

    private static int[] stemTokens(int stem) {
        return IntStream.range(0, STEM_TOKENS).map(i -> 1_000 * stem + i % 1_000).toArray();
    }

    private RouteRequest request() {
        return RouteRequest.of("req", "tenant", 0, MODEL, SCOPE, prompt, BLOCK_SIZE, hasher);
    }

    @Benchmark
    public RouteDecision pick() {
        return policy.pick(hashed, view, 1);
    }

    @Benchmark
    public RouteDecision hashAndPick() {
        return policy.pick(request(), view, 1);
    }

    @Benchmark
    public RouteRequest hash() {
        return request();
    }

    @Benchmark
    public RouteDecision roundRobin() {
        return roundRobin.pick(hashed, view, 1);
    }
}
