package io.kvass.cluster.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.cluster.node.LoraSettings;
import io.kvass.cluster.node.ServeSettings;
import io.kvass.scheduler.core.SchedulingPolicy;
import io.kvass.worker.cpu.CpuWeightFormat;
import io.kvass.worker.cpu.CpuWeightMemory;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** {@code kvass serve}'s configuration: reference.conf defaults, a --config file over them, flags over both. */
class ServeCommandTest {
    private static final String MODEL = Fixtures.stories260K().toString();

    private static ServeSettings settings(String... flags) {
        List<String> args = new ArrayList<>(List.of("serve"));
        args.addAll(List.of(flags));
        return ServeCommand.settings(args.toArray(String[]::new));
    }

    private static String refusal(String... flags) {
        return assertThrows(CliException.class, () -> settings(flags)).getMessage();
    }

    @Test
    void defaultsComeFromReferenceConf() {
        ServeSettings s = settings("--model", MODEL);
        assertEquals("stories260K", s.servedModelName());
        assertEquals(8000, s.http().port());
        assertEquals("0.0.0.0", s.http().host());
        assertTrue(s.http().apiKey().isEmpty());
        assertEquals(256, s.engine().maxNumSeqs());
        assertEquals(2048, s.engine().maxNumBatchedTokens());
        assertEquals(SchedulingPolicy.FCFS, s.engine().policy());
        assertTrue(s.engine().enablePrefixCaching());
        assertEquals(16, s.replica().blockSize());
        assertEquals(512L << 20, s.replica().kvCacheBytes());
        assertEquals(0, s.replica().maxModelLen());
        assertEquals(Duration.ofSeconds(30), s.http().drainTimeout());
        assertEquals(8L << 20, s.http().maxBodyBytes());
        // The ActorSystem's settings derived from them: a cluster node on loopback that never passivates replicas.
        assertEquals("cluster", s.config().getString("pekko.actor.provider"));
        assertEquals("127.0.0.1", s.config().getString("pekko.remote.artery.canonical.hostname"));
        assertEquals("none", s.config().getString("pekko.cluster.sharding.passivation.strategy"));
        assertTrue(s.config().getDuration("pekko.coordinated-shutdown.phases.service-requests-done.timeout")
                .compareTo(Duration.ofSeconds(30)) > 0, "the drain fits in its shutdown phase");
    }

    @Test
    void connectionLimitsReachTheHttpSettings() {
        var defaults = settings("--model", MODEL).http().limits();
        assertEquals(Duration.ofSeconds(20), defaults.headerTimeout());
        assertEquals(Duration.ofSeconds(60), defaults.bodyTimeout());
        assertEquals(1024, defaults.maxConnections());
        assertEquals(256, defaults.maxConnectionsPerClient());
        var set = settings("--model", MODEL, "--header-timeout", "5s", "--body-timeout", "2m", "--max-connections", "99",
                "--max-connections-per-client", "7").http().limits();
        assertEquals(Duration.ofSeconds(5), set.headerTimeout());
        assertEquals(Duration.ofMinutes(2), set.bodyTimeout());
        assertEquals(99, set.maxConnections());
        assertEquals(7, set.maxConnectionsPerClient());
        assertTrue(refusal("--model", MODEL, "--header-timeout", "0s").contains("header-timeout"));
        assertTrue(refusal("--model", MODEL, "--max-connections-per-client", "0").contains("max-connections-per-client"));
    }

    @Test
    void gpuMemoryUtilizationReachesTheReplicaOptions() {
        assertEquals(0.9, settings("--model", MODEL).replica().gpuMemoryUtilization(), 1e-9);
        assertEquals(0.55, settings("--model", MODEL, "--device", "cuda", "--gpu-memory-utilization", "0.55")
                .replica().gpuMemoryUtilization(), 1e-9);
    }

    @Test
    void cpuWeightsReachTheReplicaOptions() {
        assertEquals(CpuWeightMemory.DEFAULT, settings("--model", MODEL).replica().cpuWeights());
        assertEquals(CpuWeightMemory.HUGEPAGES, settings("--model", MODEL, "--cpu-weights", "hugepages").replica().cpuWeights());
        assertEquals(CpuWeightMemory.MMAP, settings("--model", MODEL, "--cpu-weights", "mmap").replica().cpuWeights());
        assertEquals(CpuWeightMemory.DEFAULT, settings("--model", MODEL, "--cpu-weights", "auto").replica().cpuWeights());
        assertTrue(refusal("--model", MODEL, "--cpu-weights", "tmpfs").contains("use auto, hugepages or mmap"));
    }

    @Test
    void cpuWeightFormatReachesTheReplicaOptions() {
        assertEquals(CpuWeightFormat.PACKED, settings("--model", MODEL).replica().cpuWeightFormat());
        assertEquals(CpuWeightFormat.BF16, settings("--model", MODEL, "--cpu-weight-format", "bf16").replica().cpuWeightFormat());
        assertEquals(CpuWeightFormat.PACKED,
                settings("--model", MODEL, "--cpu-weight-format", "packed").replica().cpuWeightFormat());
        assertTrue(refusal("--model", MODEL, "--cpu-weight-format", "q4").contains("use packed or bf16"));
    }

    @Test
    void flagsOverrideTheConfigFileWhichOverridesDefaults(@TempDir Path dir) throws IOException {
        Path conf = dir.resolve("kvass.conf");
        Files.writeString(conf, """
                kvass {
                  max-num-seqs = 32
                  block-size = 32
                  http { port = 9000, api-key = "from-file", max-waiting = 7 }
                  scheduling-policy = priority
                }
                pekko.loglevel = DEBUG
                """);
        ServeSettings s = settings("--model", MODEL, "--config", conf.toString(), "--port", "9100",
                "--served-model-name", "tiny", "--kv-cache-memory", "64M", "--max-model-len", "256",
                "--no-enable-prefix-caching", "--api-key", "sk-1");
        assertEquals(9100, s.http().port(), "flag over file");
        assertEquals(32, s.engine().maxNumSeqs(), "file over default");
        assertEquals(32, s.replica().blockSize());
        assertEquals(7, s.http().maxWaiting());
        assertEquals("sk-1", s.http().apiKey().orElseThrow());
        assertEquals("tiny", s.servedModelName());
        assertEquals(64L << 20, s.replica().kvCacheBytes());
        assertEquals(256, s.replica().maxModelLen());
        assertEquals(SchedulingPolicy.PRIORITY, s.engine().policy());
        assertTrue(!s.engine().enablePrefixCaching());
        assertEquals("DEBUG", s.config().getString("pekko.loglevel"), "pekko settings pass through --config");
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            --bogus 1                                   | unknown flag --bogus
            --port abc                                  | --port expects an integer
            --port 70000                                | --port: must be in 0..65535
            --max-num-seqs 0                            | --max-num-seqs: must be at least 1
            --max-num-batched-tokens -5                 | --max-num-batched-tokens: must be at least 1
            --max-waiting 0                             | --max-waiting: must be at least 1
            --block-size 12                             | --block-size
            --kv-cache-memory lots                      | --kv-cache-memory expects an integer
            --gpu-memory-utilization 0.5                | --gpu-memory-utilization: applies to --device cuda only
            --gpu-memory-utilization 1.5                | --gpu-memory-utilization must be in (0, 1]
            --kv-cache-memory 1G --gpu-memory-utilization 0.9 | not both
            --device tpu                                | --device: unknown device 'tpu'
            --scheduling-policy lifo                    | --scheduling-policy: must be fcfs or priority
            --config /nonexistent.conf                  | --config: no such file
            --port                                      | --port needs a value
            """)
    void badFlagsAreRefusedWithAMessageNamingThem(String flags, String expected) {
        List<String> args = new ArrayList<>(List.of("--model", MODEL));
        args.addAll(List.of(flags.trim().split("\\s+")));
        String message = refusal(args.toArray(String[]::new));
        assertTrue(message.contains(expected), message);
    }

    @Test
    void loraIsOffByDefault() {
        ServeSettings s = settings("--model", MODEL);
        assertFalse(s.lora().enabled());
        assertEquals(LoraCapacity.NONE, s.lora().capacity());
        assertEquals(1, s.lora().maxLoras());
        assertEquals(1, s.lora().maxCpuLoras(), "max-cpu-loras 0 means max-loras");
        assertEquals(16, s.lora().maxRank());
    }

    @Test
    void loraFlagsAsVllmSpellsThem(@TempDir Path dir) throws IOException {
        Path a = Files.createDirectories(dir.resolve("a"));
        Path b = Files.createDirectories(dir.resolve("b"));
        ServeSettings s = settings("--model", MODEL, "--enable-lora", "--lora-modules", "sql=" + a,
                "{\"name\": \"chat\", \"path\": \"" + b + "\", \"base_model_name\": \"stories260K\"}",
                "--max-loras", "2", "--max-cpu-loras", "4", "--max-lora-rank", "8", "--port", "0");
        LoraSettings lora = s.lora();
        assertTrue(lora.enabled());
        assertEquals(List.of(new LoraSettings.Module("sql", a, Optional.empty()),
                new LoraSettings.Module("chat", b, Optional.of("stories260K"))), lora.modules());
        assertEquals(new LoraCapacity(2, 8), lora.capacity());
        assertEquals(4, lora.options().maxCpuLoras());
        assertEquals(List.of(a, b), lora.options().allowedRoots(), "the modules' directories may be loaded from");
        assertEquals(0, s.http().port(), "flags after --lora-modules still count");
    }

    @Test
    void loraFromTheConfigFileUnderFlags(@TempDir Path dir) throws IOException {
        Path a = Files.createDirectories(dir.resolve("a"));
        Path conf = dir.resolve("kvass.conf");
        Files.writeString(conf, "kvass.lora { enabled = on, max-loras = 2, max-lora-rank = 32\n"
                + "  modules = [{ name = sql, path = \"" + a + "\" }, \"other=" + a + "\"]\n"
                + "  allowed-roots = [\"" + dir + "\"] }\n");
        ServeSettings s = settings("--model", MODEL, "--config", conf.toString(), "--max-loras", "3");
        assertEquals(3, s.lora().maxLoras(), "flag over file");
        assertEquals(32, s.lora().maxRank());
        assertEquals(List.of("sql", "other"), s.lora().modules().stream().map(LoraSettings.Module::name).toList());
        assertEquals(List.of(a, a, dir), s.lora().options().allowedRoots());
        s = settings("--model", MODEL, "--config", conf.toString(), "--lora-modules", "only=" + a,
                "--lora-allowed-roots", "/x", "/y");
        assertEquals(List.of("only"), s.lora().modules().stream().map(LoraSettings.Module::name).toList(),
                "--lora-modules replaces the file's list");
        assertEquals(List.of(a, Path.of("/x"), Path.of("/y")), s.lora().options().allowedRoots());
    }

    @Test
    void badLoraSettingsAreRefusedNamingThem(@TempDir Path dir) throws IOException {
        String a = Files.createDirectories(dir.resolve("a")).toString();
        assertTrue(settings("--model", MODEL, "--lora-modules", "x=" + a).lora().enabled(), "modules imply --enable-lora");
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules", "x").contains("expected name=DIR"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules").contains("--lora-modules needs a value"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules", "x=" + a, "x=" + a)
                .contains("given twice"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules", "x=/no/such/adapter")
                .contains("not a directory"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules", "stories260K=" + a)
                .contains("the served model's name"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules",
                "{\"name\": \"x\", \"path\": \"" + a + "\", \"base_model_name\": \"llama\"}")
                .contains("names base model 'llama'"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--lora-modules", "{\"name\": \"x\"}")
                .contains("needs a string \"path\""));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--max-loras", "0").contains("--max-loras: must be at least 1"));
        assertTrue(refusal("--model", MODEL, "--enable-lora", "--max-loras", "4", "--max-cpu-loras", "2")
                .contains("--max-cpu-loras: must be at least max-loras (4)"));
        assertTrue(refusal("--model", MODEL, "--enable-lora=yes").contains("--enable-lora takes no value"));
    }

    @Test
    void modelIsRequiredAndMustExist() {
        assertTrue(refusal().contains("--model"));
        assertTrue(refusal("--model", "/no/such/model").contains("not a directory"));
    }

    @Test
    void badValuesInTheConfigFileNameTheirKey(@TempDir Path dir) throws IOException {
        Path conf = dir.resolve("bad.conf");
        Files.writeString(conf, "kvass.max-num-seqs = many\n");
        String message = refusal("--model", MODEL, "--config", conf.toString());
        assertTrue(message.startsWith("kvass.max-num-seqs"), message);
        Files.writeString(conf, "kvass { http { port = \n");
        assertTrue(refusal("--model", MODEL, "--config", conf.toString()).startsWith("--config"));
    }
}
