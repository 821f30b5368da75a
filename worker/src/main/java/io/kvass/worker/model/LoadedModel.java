package io.kvass.worker.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashSet;
import java.util.Set;

/** A model directory opened for serving: its config and shape-checked (mmapped) weights. */
public record LoadedModel(Path dir, ModelConfig config, LlamaTensors tensors, WeightSource source) implements AutoCloseable {

    /**
     * Opens a Hugging Face directory ({@code config.json} + safetensors) or a directory holding a
     * llama2.c checkpoint; errors name the directory and what is wrong with it.
     */
    public static LoadedModel load(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new ModelLoadException("model directory " + dir + " does not exist or is not a directory");
        }
        if (Files.isRegularFile(dir.resolve("config.json"))) {
            ModelConfig config = withGenerationEos(ModelConfig.load(dir), dir);
            if (!SafeTensorsWeights.present(dir)) {
                throw new ModelLoadException("no model.safetensors or model.safetensors.index.json in " + dir);
            }
            return open(dir, config, SafeTensorsWeights.open(dir));
        }
        Path checkpoint = Llama2cCheckpoint.find(dir).orElseThrow(() -> new ModelLoadException(
                dir + " holds neither a Hugging Face model (config.json) nor a llama2.c checkpoint (.bin)"));
        Llama2cCheckpoint ckpt = Llama2cCheckpoint.open(checkpoint);
        return open(dir, ckpt.config(), ckpt);
    }

    private static LoadedModel open(Path dir, ModelConfig config, WeightSource source) {
        try {
            return new LoadedModel(dir, config, LlamaTensors.from(source, config), source);
        } catch (RuntimeException e) {
            source.close();
            throw e;
        }
    }

    /** {@code generation_config.json} often lists more stop ids (Llama 3's {@code <|eot_id|>}). */
    private static ModelConfig withGenerationEos(ModelConfig c, Path dir) {
        Path gen = dir.resolve("generation_config.json");
        if (!Files.isRegularFile(gen)) {
            return c;
        }
        try {
            Set<Integer> eos = new LinkedHashSet<>(c.eosTokenIds());
            eos.addAll(ModelConfig.tokenIds(new ObjectMapper().readTree(gen.toFile()).path("eos_token_id")));
            return new ModelConfig(c.architecture(), c.hiddenSize(), c.intermediateSize(), c.numLayers(), c.numHeads(),
                    c.numKvHeads(), c.headDim(), c.vocabSize(), c.rmsNormEps(), c.rope(), c.maxPositions(),
                    c.tiedEmbeddings(), c.qkvBias(), c.bosTokenId(), eos);
        } catch (IOException e) {
            throw new ModelLoadException("cannot parse " + gen + ": " + e.getMessage(), e);
        }
    }

    @Override
    public void close() {
        source.close();
    }
}
