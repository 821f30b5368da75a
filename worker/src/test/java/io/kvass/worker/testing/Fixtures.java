package io.kvass.worker.testing;

import io.kvass.worker.model.DType;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
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

    /**
     * The model as PEFT's reference script saw it: RoPE frequencies computed in fp32, never rounded to
     * bf16 (the adapter references ran on a base model loaded in fp32; see {@link RopeScaling}).
     */
    public static LoadedModel asPeftLoadedIt(LoadedModel m) {
        ModelConfig c = m.config();
        RopeScaling r = c.rope();
        RopeScaling fp32 = new RopeScaling(r.type(), r.theta(), r.factor(), r.lowFreqFactor(), r.highFreqFactor(),
                r.originalMaxPositions(), DType.F32);
        ModelConfig config = new ModelConfig(c.architecture(), c.hiddenSize(), c.intermediateSize(), c.numLayers(),
                c.numHeads(), c.numKvHeads(), c.headDim(), c.vocabSize(), c.rmsNormEps(), fp32, c.maxPositions(),
                c.tiedEmbeddings(), c.qkvBias(), c.bosTokenId(), c.eosTokenIds());
        return new LoadedModel(m.dir(), config, m.tensors(), m.source());
    }
}
