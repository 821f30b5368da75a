package io.kvass.http;

import io.kvass.scheduler.engine.Engine;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.tokenizer.ChatTemplate;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.Objects;
import java.util.Optional;
import org.apache.pekko.actor.typed.RecipientRef;

/**
 * A model as the API serves it: its name, what requests need to be validated and tokenized here,
 * and where its requests go. {@code replica} is whatever reaches the model's {@code Engine}: an
 * {@code EntityRef} of Cluster Sharding when served, a plain {@code ActorRef} in tests.
 *
 * @param root      where the weights came from (OpenAI's {@code root} of a model)
 * @param vocabSize the model's vocabulary: prompt token ids must lie below it
 * @param adapters  the replica's LoRA adapters when served with {@code --enable-lora}: clients name
 *                  them as {@code model}; the replica's engine admits their requests through the same manager
 */
public record ServedModel(String name, String root, Tokenizer tokenizer, Optional<ChatTemplate> chatTemplate,
                          int maxModelLen, int vocabSize, RecipientRef<Engine.Command> replica,
                          Optional<AdapterManager> adapters) {

    public ServedModel {
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(root, "root");
        Objects.requireNonNull(tokenizer, "tokenizer");
        Objects.requireNonNull(chatTemplate, "chatTemplate");
        Objects.requireNonNull(replica, "replica");
        Objects.requireNonNull(adapters, "adapters");
        if (name.isBlank() || maxModelLen < 1 || vocabSize < 1) {
            throw new IllegalArgumentException("a served model needs a name, max_model_len >= 1 and a vocabulary");
        }
    }

    /** A base model without LoRA. */
    public ServedModel(String name, String root, Tokenizer tokenizer, Optional<ChatTemplate> chatTemplate,
                       int maxModelLen, int vocabSize, RecipientRef<Engine.Command> replica) {
        this(name, root, tokenizer, chatTemplate, maxModelLen, vocabSize, replica, Optional.empty());
    }
}
