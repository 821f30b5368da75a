package io.kvass.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.testing.Fixtures;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** bin/kvass gives the JVM a heap sized from the model and the machine, or the one asked for (issue 19, item 8). */
class LauncherHeapTest {
    private static final Path LAUNCHER = Path.of("..", "bin", "kvass").toAbsolutePath().normalize();
    private static final Pattern XMX = Pattern.compile(" -Xmx(\\S+) ");

    @TempDir
    Path tmp;

    private static String command(Map<String, String> env, String... args) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>(List.of(LAUNCHER.toString()));
        cmd.addAll(List.of(args));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
        pb.environment().put("KVASS_DRY_RUN", "1");
        pb.environment().remove("KVASS_JAVA_OPTS");
        pb.environment().putAll(env);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, p.waitFor(), out);
        return out.strip();
    }

    private static List<String> heaps(String command) {
        List<String> found = new ArrayList<>();
        Matcher m = XMX.matcher(command);
        while (m.find()) {
            found.add(m.group(1));
        }
        return found;
    }

    @Test
    void theHeapFollowsTheModelsVocabularyAndTheBatch() throws Exception {
        String small = command(Map.of(), "serve", "--model", Fixtures.stories260K().toString());
        assertEquals(List.of("513m"), heaps(small), small); // 512 MiB + 3 x 256 x 512 x 4 bytes
        assertTrue(small.endsWith("serve --model " + Fixtures.stories260K()), small);
        Path big = Files.createDirectories(tmp.resolve("llama3"));
        Files.writeString(big.resolve("config.json"), "{\"vocab_size\": 128256, \"hidden_size\": 4096}");
        // 512 MiB + 3 x 512 x 128256 x 4 bytes = 512 + 751 MiB, unless a quarter of this machine is less
        long quarter = Files.readAllLines(Path.of("/proc/meminfo")).stream().filter(l -> l.startsWith("MemTotal:"))
                .mapToLong(l -> Long.parseLong(l.replaceAll("\\D", ""))).findFirst().orElseThrow() / 1024 / 4;
        String llama = command(Map.of(), "serve", "--model", big.toString(), "--max-num-seqs", "512");
        assertEquals(List.of(Math.min(1263, quarter) + "m"), heaps(llama), llama);
    }

    @Test
    void aHeapFlagOrAnXmxInTheOptionsWins() throws Exception {
        String flagged = command(Map.of(), "serve", "--model", Fixtures.stories260K().toString(), "--heap", "2g",
                "--port", "9");
        assertEquals(List.of("2g"), heaps(flagged), flagged);
        assertFalse(flagged.contains("--heap"), "the launcher's own flag is not passed on: " + flagged);
        assertTrue(flagged.endsWith("--port 9"), flagged);
        String opts = command(Map.of("KVASS_JAVA_OPTS", "-Xmx3g -Dx=1"), "generate", "--model",
                Fixtures.stories260K().toString());
        assertEquals(List.of("3g"), heaps(opts), opts);
    }
}
