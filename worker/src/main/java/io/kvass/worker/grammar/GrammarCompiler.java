package io.kvass.worker.grammar;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;

/**
 * Compiles {@link GrammarSpec}s against one vocabulary and keeps the results (least recently used out), so a
 * schema is compiled once per (schema, tokenizer) however many requests use it. Thread-safe; concurrent
 * requests for the same spec share one compilation.
 *
 * <p>NOTE: {@link #of(Tokenizer, int)} keeps one compiler per tokenizer instance, so the HTTP layer (which
 * compiles a request's schema before admitting it, off the step loop, and turns errors into 400s) and the
 * worker of the same process share the cache; a worker on another node compiles on first use.
 */
public final class GrammarCompiler {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Map<Tokenizer, Map<Integer, GrammarCompiler>> BY_TOKENIZER = new WeakHashMap<>();
    static final int CAPACITY = 512;

    private final java.util.function.Supplier<TokenVocabulary> vocab;
    private final Map<GrammarSpec, CompletableFuture<TokenGrammar>> cache =
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<GrammarSpec, CompletableFuture<TokenGrammar>> e) {
                    return size() > CAPACITY;
                }
            };

    public GrammarCompiler(TokenVocabulary vocab) {
        this.vocab = () -> vocab;
    }

    /**
     * Starts building the vocabulary (a pass over every token and a trie: about a second for 128k tokens) in the
     * background at once, so neither a dispatcher nor the step loop waits for it when the first constrained request
     * comes.
     */
    private GrammarCompiler(Tokenizer tokenizer, int modelVocabSize) {
        CompletableFuture<TokenVocabulary> built = CompletableFuture.supplyAsync(
                () -> TokenVocabulary.of(tokenizer, modelVocabSize));
        this.vocab = () -> {
            try {
                return built.join();
            } catch (CompletionException e) {
                throw e.getCause() instanceof RuntimeException r ? r : e;
            }
        };
    }

    /** The shared compiler of {@code tokenizer} over a model of {@code modelVocabSize} logits. */
    public static GrammarCompiler of(Tokenizer tokenizer, int modelVocabSize) {
        synchronized (BY_TOKENIZER) {
            return BY_TOKENIZER.computeIfAbsent(tokenizer, t -> new LinkedHashMap<>())
                    .computeIfAbsent(modelVocabSize, n -> new GrammarCompiler(tokenizer, n));
        }
    }

    public TokenVocabulary vocabulary() {
        return vocab.get();
    }

    /**
     * The compiled grammar of {@code spec}, from the cache or compiled now.
     *
     * @throws GrammarException if it cannot be compiled (the message names the keyword)
     */
    public TokenGrammar compile(GrammarSpec spec) {
        CompletableFuture<TokenGrammar> mine = new CompletableFuture<>();
        CompletableFuture<TokenGrammar> existing;
        synchronized (cache) {
            existing = cache.putIfAbsent(spec, mine);
        }
        if (existing == null) {
            try {
                mine.complete(new TokenGrammar(spec, new ByteDfa(ByteNfa.of(language(spec))), vocab.get()));
            } catch (RuntimeException e) {
                synchronized (cache) {
                    cache.remove(spec, mine);
                }
                mine.completeExceptionally(e);
            }
            existing = mine;
        }
        try {
            return existing.join();
        } catch (CompletionException e) {
            throw e.getCause() instanceof RuntimeException r ? r : e;
        }
    }

    /** The byte language of {@code spec}. */
    static Rx language(GrammarSpec spec) {
        return switch (spec.kind()) {
            case JSON_OBJECT -> JsonSchemaCompiler.anyObject(JsonSchemaCompiler.ANY_DEPTH);
            case JSON_SCHEMA -> JsonSchemaCompiler.compile(parse(spec.source(), "the JSON schema"));
            case REGEX -> RegexParser.parse(spec.source());
            case CHOICE -> {
                JsonNode choices = parse(spec.source(), "the choices");
                if (!choices.isArray() || choices.isEmpty()) {
                    throw new GrammarException("choice must be a non-empty array of strings");
                }
                List<Rx> options = new ArrayList<>();
                for (JsonNode c : choices) {
                    if (!c.isTextual()) {
                        throw new GrammarException("choice must be a non-empty array of strings, got " + c);
                    }
                    options.add(Rx.literal(c.textValue()));
                }
                yield new Rx.Alt(options);
            }
        };
    }

    private static JsonNode parse(String json, String what) {
        try {
            return JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new GrammarException(what + " is not valid JSON: " + e.getOriginalMessage());
        }
    }
}
