package io.kvass.worker.testing;

import java.nio.file.Files;
import java.nio.file.Path;

/** The outside oracles in {@code ../shared/fixtures}: read in place, never copied into the repository. */
public final class Fixtures {
    private Fixtures() {
    }

    public static Path root() {
        String configured = System.getProperty("kvass.fixtures");
        if (configured != null && Files.isDirectory(Path.of(configured))) {
            return Path.of(configured).toAbsolutePath().normalize();
        }
        for (Path dir = Path.of("").toAbsolutePath(); dir != null; dir = dir.getParent()) {
            Path candidate = dir.resolveSibling("shared").resolve("fixtures");
            if (Files.isDirectory(candidate)) {
                return candidate.normalize();
            }
        }
        throw new IllegalStateException("fixtures not found: set -Dkvass.fixtures or check out ../shared/fixtures");
    }

    public static Path stories260K() {
        return root().resolve("models/stories260K");
    }

    public static Path stories260KLlama2c() {
        return root().resolve("models/stories260K-llama2c");
    }

    public static Path reference(String variant) {
        return root().resolve("reference").resolve(variant);
    }
}
