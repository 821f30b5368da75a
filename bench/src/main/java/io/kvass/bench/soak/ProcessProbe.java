package io.kvass.bench.soak;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

/** What a running JVM holds, read from /proc and jcmd: resident memory, live heap after a full GC, threads, fds. */
final class ProcessProbe {
    private static final Pattern USED = Pattern.compile("used (\\d+)K");

    record Sample(long rssKib, long liveHeapKib, int threads, int fds) {
    }

    private final long pid;
    private final Path jcmd;

    ProcessProbe(long pid) {
        this.pid = pid;
        this.jcmd = Path.of(System.getProperty("java.home"), "bin", "jcmd");
    }

    Sample sample() throws IOException, InterruptedException {
        jcmd("GC.run");
        long live = 0;
        for (String line : jcmd("GC.heap_info").split("\n")) {
            // ParallelGC: " PSYoungGen total 153088K, used 2621K [...]" and " ParOldGen total ..., used ...K"
            if (line.contains("PSYoungGen") || line.contains("ParOldGen") || line.contains("garbage-first heap")) {
                Matcher m = USED.matcher(line);
                if (m.find()) {
                    live += Long.parseLong(m.group(1));
                }
            }
        }
        String status = Files.readString(Path.of("/proc", Long.toString(pid), "status"));
        int fds;
        try (Stream<Path> s = Files.list(Path.of("/proc", Long.toString(pid), "fd"))) {
            fds = (int) s.count();
        }
        return new Sample(field(status, "VmRSS:"), live, (int) field(status, "Threads:"), fds);
    }

    /** The first {@code rows} rows of the live-object histogram (after a full GC). */
    java.util.List<String> histogram(int rows) throws IOException, InterruptedException {
        return jcmd("GC.class_histogram").lines().limit(rows + 3).toList();
    }

    private static long field(String status, String name) {
        for (String line : status.split("\n")) {
            if (line.startsWith(name)) {
                return Long.parseLong(line.substring(name.length()).replaceAll("[^0-9]", ""));
            }
        }
        throw new IllegalStateException("no " + name + " in /proc status");
    }

    private String jcmd(String command) throws IOException, InterruptedException {
        Process p = new ProcessBuilder(jcmd.toString(), Long.toString(pid), command).redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(60, TimeUnit.SECONDS) || p.exitValue() != 0) {
            throw new IOException("jcmd " + command + " failed: " + out);
        }
        return out;
    }
}
