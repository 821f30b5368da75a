package io.kvass.http;

import io.kvass.scheduler.router.RouterActor;
import io.kvass.worker.tokenizer.ChatTemplate;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.Objects;
import java.util.Optional;
import org.apache.pekko.actor.typed.RecipientRef;

/**
 * A model as the API serves it: its name, what requests need to be validated and tokenized here,
 * and where its requests go: the gateway's {@link RouterActor}, which picks one of the model's replicas.
 *
 * @param root      where the weights came from (OpenAI's {@code root} of a model)
 * @param vocabSize the model's vocabulary: prompt token ids must lie below it
 * @param adapters  the model's LoRA adapters when served with {@code --enable-lora}: clients name them as
 *                  {@code model}; replicas load them when a request first needs them
 */
public record ServedModel(String name, String root, Tokenizer tokenizer, Optional<ChatTemplate> chatTemplate,
                          int maxModelLen, int vocabSize, RecipientRef<RouterActor.Command> router,
                          Optional<AdapterCatalog> adapters) {

    public ServedModel {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(root, "root");
        Objects.requireNonNull(tokenizer, "tokenizer");
        Objects.requireNonNull(chatTemplate, "chatTemplate");
        Objects.requireNonNull(router, "router");
        Objects.requireNonNull(adapters, "adapters");
        if (name.isBlank() || maxModelLen < 1 || vocabSize < 1) {
            throw new IllegalArgumentException("a served model needs a name, max_model_len >= 1 and a vocabulary");
        }
    }

    /** A base model without LoRA. */
    public ServedModel(String name, String root, Tokenizer tokenizer, Optional<ChatTemplate> chatTemplate,
                       int maxModelLen, int vocabSize, RecipientRef<RouterActor.Command> router) {
        this(name, root, tokenizer, chatTemplate, maxModelLen, vocabSize, router, Optional.empty());
    }
}
