package io.kvass.worker.lora;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A path outside the allowed roots learns nothing: no "exists", no "not a directory", no resolved target. */
class AdapterPathPolicyTest {
    @TempDir
    Path tmp;

    private static final String REFUSED = "LoRA adapter %s: not under an allowed directory";

    @Test
    void probesOutsideTheRootsAllGetTheSameAnswer() throws IOException {
        Path allowed = Files.createDirectories(tmp.resolve("allowed"));
        LoraLoader loader = new LoraLoader(null, 8, List.of(allowed));
        for (String probe : List.of("/etc/passwd", "/etc", "/proc/self", "/proc/self/cwd", "/no/such/dir",
                allowed.resolve("../allowed-not").toString(), allowed + "/../../etc")) {
            AdapterLoadException e = assertThrows(AdapterLoadException.class, () -> loader.resolve(Path.of(probe)), probe);
            assertEquals(REFUSED.formatted(probe), e.getMessage());
        }
        String pid = Long.toString(ProcessHandle.current().pid());
        AdapterLoadException self = assertThrows(AdapterLoadException.class, () -> loader.resolve(Path.of("/proc/self")));
        assertFalse(self.getMessage().contains(pid), self.getMessage());
    }

    @Test
    void aLinkInsideThatLeadsOutIsRefusedWithoutNamingItsTarget() throws IOException {
        Path allowed = Files.createDirectories(tmp.resolve("allowed"));
        Path secret = Files.createDirectories(tmp.resolve("secret-place"));
        Path link = Files.createSymbolicLink(allowed.resolve("link"), secret);
        AdapterLoadException e = assertThrows(AdapterLoadException.class,
                () -> new LoraLoader(null, 8, List.of(allowed)).resolve(link));
        assertEquals(REFUSED.formatted(link), e.getMessage());
        assertFalse(e.getMessage().contains("secret-place"), e.getMessage());
    }

    @Test
    void insideTheRootsTheFileSystemIsConsulted() throws IOException {
        Path allowed = Files.createDirectories(tmp.resolve("allowed"));
        LoraLoader loader = new LoraLoader(null, 8, List.of(allowed));
        assertTrue(assertThrows(AdapterLoadException.class, () -> loader.resolve(allowed.resolve("missing")))
                .getMessage().contains("does not exist"));
        Path file = Files.writeString(allowed.resolve("file"), "x");
        assertTrue(assertThrows(AdapterLoadException.class, () -> loader.resolve(file)).getMessage()
                .contains("not a directory"));
        Path dir = Files.createDirectories(allowed.resolve("a/b"));
        assertEquals(dir.toRealPath(), loader.resolve(allowed.resolve("a/../a/b")));
    }

    @Test
    void aRootGivenThroughALinkAllowsItsRealPathToo() throws IOException {
        Path real = Files.createDirectories(tmp.resolve("real-root"));
        Path viaLink = Files.createSymbolicLink(tmp.resolve("root-link"), real);
        Path adapter = Files.createDirectories(real.resolve("adapter"));
        LoraLoader loader = new LoraLoader(null, 8, List.of(viaLink));
        assertEquals(adapter.toRealPath(), loader.resolve(adapter));
        assertEquals(adapter.toRealPath(), loader.resolve(viaLink.resolve("adapter")));
    }

    @Test
    void noRootsAllowNothing() {
        AdapterPathPolicy none = new AdapterPathPolicy(List.of());
        assertThrows(AdapterLoadException.class, () -> none.checkGiven(tmp));
    }
}
