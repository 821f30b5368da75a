package io.kvass.http.api;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.scheduler.core.Finish;
import io.kvass.scheduler.output.RequestOutput;
import io.kvass.worker.sampling.SampledToken;
import io.kvass.worker.sampling.TokenLogprob;
import io.kvass.worker.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Optional;

/**
 * The response shapes of one endpoint, OpenAI's to the field: the streamed chunks
 * ({@code chat.completion.chunk} / {@code text_completion}) and the whole response.
 */
public abstract sealed class ResponseFormat permits ResponseFormat.Chat, ResponseFormat.Completion {
    /** vLLM's floor for {@code -inf} logprobs (JSON has no infinity). */
    private static final float MIN_LOGPROB = -9999f;

    protected final GenerationJob job;
    protected final Tokenizer tokenizer;

    private ResponseFormat(GenerationJob job) {
        this.job = job;
        this.tokenizer = job.model().base().tokenizer();
    }

    public static ResponseFormat of(GenerationJob job) {
        return switch (job.kind()) {
            case CHAT -> new Chat(job);
            case COMPLETION -> new Completion(job);
        };
    }

    /** The text every choice of prompt {@code prompt} starts with (echo). */
    public String prefix(int prompt) {
        return job.echo() ? job.prompts().get(prompt).text() : "";
    }

    /** Choices of the first chunk, before any token (chat: the assistant role; completions: the echo). */
    public abstract List<ObjectNode> openingChoices();

    /** A streamed choice carrying {@code o}, or empty when it has nothing to say. */
    public abstract Optional<ObjectNode> deltaChoice(Choice choice, RequestOutput o);

    /** A choice of the whole (non-streamed) response. */
    public abstract ObjectNode finalChoice(Choice choice);

    protected abstract String chunkObject();

    protected abstract String responseObject();

    public ObjectNode chunk(List<ObjectNode> choices, boolean withUsage) {
        ObjectNode chunk = envelope(chunkObject());
        ArrayNode array = chunk.putArray("choices");
        choices.forEach(array::add);
        if (withUsage) {
            chunk.putNull("usage");
        }
        return chunk;
    }

    /** The last chunk when {@code stream_options.include_usage}: no choices, the usage. */
    public ObjectNode usageChunk(Usage usage) {
        ObjectNode chunk = envelope(chunkObject());
        chunk.putArray("choices");
        chunk.set("usage", usage.toJson());
        return chunk;
    }

    public ObjectNode response(List<Choice> choices, Usage usage) {
        ObjectNode response = envelope(responseObject());
        ArrayNode array = response.putArray("choices");
        choices.forEach(c -> array.add(finalChoice(c)));
        response.set("usage", usage.toJson());
        return response;
    }

    private ObjectNode envelope(String object) {
        ObjectNode o = JsonNodeFactory.instance.objectNode();
        o.put("id", job.id());
        o.put("object", object);
        o.put("created", job.created());
        o.put("model", job.model().name());
        return o;
    }

    protected static void putFinish(ObjectNode choice, Optional<Finish> finish) {
        choice.put("finish_reason", finish.map(f -> f.reason().apiName()).orElse(null));
        Object stop = finish.flatMap(Finish::stopReason).orElse(null);
        switch (stop) {
            case Integer id -> choice.put("stop_reason", id);
            case String s -> choice.put("stop_reason", s);
            case null, default -> choice.putNull("stop_reason");
        }
    }

    protected String tokenText(int id) {
        return tokenizer.decode(new int[] {id}, false);
    }

    protected static float logprob(float lp) {
        return Float.isNaN(lp) ? MIN_LOGPROB : Math.max(lp, MIN_LOGPROB);
    }

    /** {@code /v1/chat/completions}. */
    static final class Chat extends ResponseFormat {
        private final java.util.Map<Integer, StringBuilder> held = new java.util.HashMap<>(); // tools: text per choice

        Chat(GenerationJob job) {
            super(job);
        }

        @Override
        protected String chunkObject() {
            return "chat.completion.chunk";
        }

        @Override
        protected String responseObject() {
            return "chat.completion";
        }

        @Override
        public List<ObjectNode> openingChoices() {
            return java.util.stream.IntStream.range(0, job.numChoices()).mapToObj(i -> {
                ObjectNode c = JsonNodeFactory.instance.objectNode();
                c.put("index", i);
                c.putObject("delta").put("role", "assistant").put("content", "");
                c.putNull("logprobs");
                c.putNull("finish_reason");
                return c;
            }).toList();
        }

        @Override
        public Optional<ObjectNode> deltaChoice(Choice choice, RequestOutput o) {
            if (job.tools().isPresent()) {
                return toolDelta(choice, o);
            }
            boolean logprobs = job.logprobs() && !o.tokens().isEmpty();
            if (o.text().isEmpty() && o.finish().isEmpty() && !logprobs) {
                return Optional.empty();
            }
            ObjectNode c = JsonNodeFactory.instance.objectNode();
            c.put("index", choice.index());
            ObjectNode delta = c.putObject("delta");
            if (!o.text().isEmpty()) {
                delta.put("content", o.text());
            }
            c.set("logprobs", logprobs ? logprobs(o.tokens()) : JsonNodeFactory.instance.nullNode());
            putFinish(c, o.finish());
            return Optional.of(c);
        }

        @Override
        public ObjectNode finalChoice(Choice choice) {
            ObjectNode c = JsonNodeFactory.instance.objectNode();
            c.put("index", choice.index());
            ObjectNode message = c.putObject("message").put("role", "assistant").put("content", choice.text());
            c.set("logprobs", job.logprobs() ? logprobs(choice.tokens()) : JsonNodeFactory.instance.nullNode());
            putFinish(c, choice.finish());
            job.tools().ifPresent(tools -> ToolCallOutput.put(tools, choice.text(), message, c, false));
            return c;
        }

        /**
         * With tools the text is held back until the choice finishes, then sent as one delta: its content, or its
         * calls as {@code delta.tool_calls} (whole arguments in one chunk; OpenAI clients accumulate either way).
         */
        private Optional<ObjectNode> toolDelta(Choice choice, RequestOutput o) {
            StringBuilder text = held.computeIfAbsent(choice.index(), i -> new StringBuilder()).append(o.text());
            if (o.finish().isEmpty()) {
                return Optional.empty();
            }
            held.remove(choice.index());
            ObjectNode c = JsonNodeFactory.instance.objectNode();
            c.put("index", choice.index());
            ObjectNode delta = c.putObject("delta");
            if (!text.isEmpty()) {
                delta.put("content", text.toString());
            }
            c.putNull("logprobs");
            putFinish(c, o.finish());
            ToolCallOutput.put(job.tools().orElseThrow(), text.toString(), delta, c, true);
            return Optional.of(c);
        }

        private ObjectNode logprobs(List<SampledToken> tokens) {
            ObjectNode lp = JsonNodeFactory.instance.objectNode();
            ArrayNode content = lp.putArray("content");
            for (SampledToken t : tokens) {
                ObjectNode entry = entry(t.tokenId(), t.logprob());
                ArrayNode top = entry.putArray("top_logprobs");
                t.topLogprobs().forEach(alt -> top.add(entry(alt.tokenId(), alt.logprob())));
                content.add(entry);
            }
            return lp;
        }

        private ObjectNode entry(int id, float logprob) {
            String text = tokenText(id);
            ObjectNode e = JsonNodeFactory.instance.objectNode();
            e.put("token", text);
            e.put("logprob", logprob(logprob));
            ArrayNode bytes = e.putArray("bytes");
            for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
                bytes.add(b & 0xff);
            }
            return e;
        }
    }

    /** {@code /v1/completions}. */
    static final class Completion extends ResponseFormat {
        Completion(GenerationJob job) {
            super(job);
        }

        @Override
        protected String chunkObject() {
            return "text_completion";
        }

        @Override
        protected String responseObject() {
            return "text_completion";
        }

        @Override
        public List<ObjectNode> openingChoices() {
            if (!job.echo()) {
                return List.of();
            }
            return java.util.stream.IntStream.range(0, job.numChoices())
                    .mapToObj(i -> choice(i, prefix(i / job.n()), null, Optional.empty()))
                    .toList();
        }

        @Override
        public Optional<ObjectNode> deltaChoice(Choice choice, RequestOutput o) {
            boolean logprobs = job.logprobs() && !o.tokens().isEmpty();
            if (o.text().isEmpty() && o.finish().isEmpty() && !logprobs) {
                return Optional.empty();
            }
            return Optional.of(choice(choice.index(), o.text(), logprobs ? logprobs(choice, o.tokens()) : null,
                    o.finish()));
        }

        @Override
        public ObjectNode finalChoice(Choice choice) {
            return choice(choice.index(), choice.text(), job.logprobs() ? logprobs(choice, choice.tokens()) : null,
                    choice.finish());
        }

        private static ObjectNode choice(int index, String text, JsonNode logprobs, Optional<Finish> finish) {
            ObjectNode c = JsonNodeFactory.instance.objectNode();
            c.put("index", index);
            c.put("text", text);
            c.set("logprobs", logprobs == null ? JsonNodeFactory.instance.nullNode() : logprobs);
            putFinish(c, finish);
            return c;
        }

        private ObjectNode logprobs(Choice choice, List<SampledToken> tokens) {
            ObjectNode lp = JsonNodeFactory.instance.objectNode();
            ArrayNode offsets = lp.putArray("text_offset");
            ArrayNode logprobs = lp.putArray("token_logprobs");
            ArrayNode texts = lp.putArray("tokens");
            ArrayNode tops = lp.putArray("top_logprobs");
            for (SampledToken t : tokens) {
                String text = tokenText(t.tokenId());
                offsets.add(choice.advance(text));
                logprobs.add(logprob(t.logprob()));
                texts.add(text);
                ObjectNode top = tops.addObject();
                for (TokenLogprob alt : t.topLogprobs()) {
                    String altText = tokenText(alt.tokenId());
                    if (!top.has(altText)) {
                        top.put(altText, logprob(alt.logprob()));
                    }
                }
            }
            return lp;
        }
    }
}
