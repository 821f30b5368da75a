package io.kvass.worker.lora;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Where adapters may be read from, checked so that a refusal tells the caller nothing about the file
 * system: the path as given is placed under an allowed root before anything outside is touched (so
 * neither "not a directory" nor a resolved {@code /proc/self} answers a probe), and after links are
 * resolved the real path must still lie under one; either refusal says only that.
 */
public final class AdapterPathPolicy {
    static final String REFUSAL = "not under an allowed directory";

    private final List<Path> roots;

    public AdapterPathPolicy(List<Path> roots) {
        this.roots = List.copyOf(roots);
    }

    /**
     * Before the file system: {@code dir} made absolute and normalized (so {@code ..} cannot climb out)
     * must start with an allowed root, as configured or as its own real path.
     */
    public void checkGiven(Path dir) {
        Path lexical = dir.toAbsolutePath().normalize();
        for (Path root : rootForms()) {
            if (lexical.startsWith(root)) {
                return;
            }
        }
        throw new AdapterLoadException(dir, REFUSAL);
    }

    /** After resolving links: {@code real} (of {@code dir}, or of a file in it) must lie under a root's real path. */
    public void checkResolved(Path dir, Path real) {
        for (Path root : roots) {
            try {
                if (real.startsWith(root.toRealPath())) {
                    return;
                }
            } catch (IOException e) {
                // a root that does not exist allows nothing
            }
        }
        throw new AdapterLoadException(dir, REFUSAL);
    }

    /** Each root as configured (absolute, normalized) and, when it exists, as its real path. */
    private List<Path> rootForms() {
        List<Path> forms = new ArrayList<>();
        for (Path root : roots) {
            forms.add(root.toAbsolutePath().normalize());
            try {
                forms.add(root.toRealPath());
            } catch (IOException e) {
                // the configured form only
            }
        }
        return forms;
    }
}
