package io.kvass.worker;

import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.tokenizer.ChatTemplate;
import io.kvass.worker.tokenizer.Tokenizer;
import java.nio.file.Files;
import java.util.Optional;

/**
 * What a gateway needs of a model to validate, template and tokenize requests, without its weights: the
 * tokenizer, chat template, configuration and context length. Replicas load the weights on their own nodes.
 */
public record ModelCard(Tokenizer tokenizer, Optional<ChatTemplate> chatTemplate, ModelConfig config, int maxModelLen)
        implements AutoCloseable {

    public static ModelCard load(ReplicaOptions options) {
        ModelConfig config = config(options);
        int maxModelLen = maxModelLen(options, config);
        Tokenizer tokenizer = Tokenizer.load(options.modelDir());
        return new ModelCard(tokenizer, ChatTemplate.load(options.modelDir()), config, maxModelLen);
    }

    /** {@code --max-model-len}, or the model's positions; more than the model has is refused. */
    static int maxModelLen(ReplicaOptions options, ModelConfig config) {
        int maxModelLen = options.maxModelLen() == 0 ? config.maxPositions() : options.maxModelLen();
        if (maxModelLen > config.maxPositions()) {
            throw new ModelLoadException("max_model_len " + maxModelLen + " exceeds the model's "
                    + config.maxPositions() + " positions");
        }
        return maxModelLen;
    }

    /** {@code config.json} when there is one; a llama2c checkpoint keeps its configuration in its header. */
    private static ModelConfig config(ReplicaOptions options) {
        if (Files.isRegularFile(options.modelDir().resolve("config.json"))) {
            return ModelConfig.load(options.modelDir());
        }
        try (LoadedModel model = LoadedModel.load(options.modelDir())) {
            return model.config();
        }
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
