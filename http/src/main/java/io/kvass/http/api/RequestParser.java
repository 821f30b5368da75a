package io.kvass.http.api;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvass.http.RequestedModel;
import io.kvass.http.ServedModel;
import io.kvass.http.tools.ToolCallParser;
import io.kvass.http.tools.ToolCalling;
import io.kvass.worker.grammar.GrammarSpec;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.tokenizer.ChatMessage;
import io.kvass.worker.tokenizer.ChatTemplateException;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.UUID;
import java.util.function.Function;

/**
 * Validates {@code /v1/completions} and {@code /v1/chat/completions} bodies and turns them into a
 * {@link GenerationJob}: tokenized prompts (chat template applied), sampling parameters, length
 * limits against max_model_len. Every refusal is an {@link ApiError} naming the field.
 */
public final class RequestParser {
    /** OpenAI's bound on {@code n}. */
    static final int MAX_N = 128;

    private static final Set<String> SAMPLING_FIELDS = Set.of("model", "max_tokens", "temperature", "top_p", "n",
            "stream", "stream_options", "stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "user",
            "top_k", "min_p", "repetition_penalty", "ignore_eos", "stop_token_ids", "min_tokens",
            "skip_special_tokens", "priority", "store", "metadata", "service_tier");
    private static final Set<String> COMPLETION_FIELDS = union(SAMPLING_FIELDS,
            Set.of("prompt", "logprobs", "echo", "best_of", "suffix", "add_special_tokens", "response_format",
                    "structured_outputs"));
    private static final Set<String> CHAT_FIELDS = union(SAMPLING_FIELDS, Set.of("messages", "max_completion_tokens",
            "logprobs", "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "response_format",
            "add_generation_prompt", "structured_outputs"));
    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant", "tool");

    private final Function<Optional<String>, RequestedModel> models;
    private final String toolCallParser;

    /**
     * @param models resolves the request's {@code model} field (empty: the default model) to a base model
     *               or one of its LoRA adapters, throwing a 404
     */
    public RequestParser(Function<Optional<String>, RequestedModel> models) {
        this(models, "auto");
    }

    /** @param toolCallParser {@code --tool-call-parser}: hermes, llama3_json, mistral, or auto (from the chat template) */
    public RequestParser(Function<Optional<String>, RequestedModel> models, String toolCallParser) {
        this.models = models;
        this.toolCallParser = toolCallParser;
        ToolCallParser.of(toolCallParser, Optional.empty()); // fails at start on an unknown name
    }

    public GenerationJob completion(JsonRequest body) {
        body.allowOnly(COMPLETION_FIELDS);
        RequestedModel requested = models.apply(body.string("model"));
        ServedModel model = requested.base();
        if (body.raw("suffix").filter(v -> !v.asText().isEmpty()).isPresent()) {
            throw ApiError.invalid("suffix is not supported.", "suffix");
        }
        boolean echo = body.bool("echo").orElse(false);
        SamplingParams.Builder sampling = sampling(body);
        Optional<GrammarSpec> grammar = StructuredOutputs.of(body);
        grammar.ifPresent(g -> StructuredOutputs.compile(g, model, "response_format"));
        sampling.grammar(grammar);
        Optional<Integer> logprobs = body.integer("logprobs");
        if (logprobs.isPresent()) {
            checkTopLogprobs("logprobs", logprobs.get());
            if (echo) {
                throw ApiError.invalid("echo together with logprobs is not supported (no prompt logprobs).", "echo");
            }
            sampling.logprobs(logprobs.get());
        }
        int n = n(body);
        body.integer("best_of").filter(b -> b != n)
                .ifPresent(b -> { throw ApiError.invalid("best_of is not supported (it must equal n).", "best_of"); });
        boolean addSpecial = body.bool("add_special_tokens").orElse(true);
        List<GenerationJob.Prompt> prompts = new ArrayList<>();
        for (PromptInput p : promptInputs(body, model, addSpecial)) {
            prompts.add(new GenerationJob.Prompt(p.ids, echo ? p.text : "",
                    build(sampling, maxTokens(body, "max_tokens", model, p.ids.length, "prompt"))));
        }
        return job(GenerationJob.Kind.COMPLETION, "cmpl-", body, requested, prompts, n, echo, Optional.empty());
    }

    public GenerationJob chat(JsonRequest body) {
        body.allowOnly(CHAT_FIELDS);
        RequestedModel requested = models.apply(body.string("model"));
        ServedModel model = requested.base();
        SamplingParams.Builder sampling = sampling(body);
        Optional<ToolCalling> tools = ToolRequests.of(body, ToolCallParser.of(toolCallParser, model.chatTemplate()));
        Optional<GrammarSpec> grammar = StructuredOutputs.of(body);
        Optional<GrammarSpec> toolGrammar = tools.flatMap(ToolCalling::constraint);
        if (grammar.isPresent() && toolGrammar.isPresent()) {
            throw ApiError.invalid("tool_choice 'required' or a named function cannot be combined with "
                    + "response_format or structured_outputs.", "tool_choice");
        }
        grammar.ifPresent(g -> StructuredOutputs.compile(g, model, "response_format"));
        toolGrammar.ifPresent(g -> StructuredOutputs.compile(g, model, "tools"));
        sampling.grammar(grammar.or(() -> toolGrammar));
        if (tools.filter(t -> t.parsesCalls() && t.parser().needsSpecialTokens()).isPresent()) {
            sampling.skipSpecialTokens(false);
        }
        boolean logprobs = body.bool("logprobs").orElse(false);
        Optional<Integer> top = body.integer("top_logprobs");
        if (top.isPresent()) {
            checkTopLogprobs("top_logprobs", top.get());
            if (!logprobs) {
                throw ApiError.invalid("when using `top_logprobs`, `logprobs` must be set to true.", "top_logprobs");
            }
        }
        if (logprobs) {
            sampling.logprobs(top.orElse(0));
        }
        List<Map<String, Object>> messages = ToolRequests.messages(body);
        Map<String, Object> variables = tools.filter(ToolCalling::parsesCalls)
                .<Map<String, Object>>map(t -> Map.of("tools", t.templateTools())).orElse(Map.of());
        var template = model.chatTemplate().orElseThrow(() -> ApiError.invalid(
                "The model " + model.name() + " has no chat template; use /v1/completions.", "messages"));
        String rendered;
        try {
            rendered = template.renderMessages(messages, body.bool("add_generation_prompt").orElse(true), variables);
        } catch (ChatTemplateException e) {
            throw ApiError.invalid("The chat template rejected the messages: " + e.getMessage(), "messages");
        }
        int[] ids = model.tokenizer().encode(rendered, false);
        if (ids.length == 0) {
            throw ApiError.invalid("The messages render to an empty prompt.", "messages");
        }
        String maxField = body.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        var prompt = new GenerationJob.Prompt(ids, rendered, build(sampling, maxTokens(body, maxField, model, ids.length,
                "messages")));
        return job(GenerationJob.Kind.CHAT, "chatcmpl-", body, requested, List.of(prompt), n(body), false,
                tools.filter(ToolCalling::parsesCalls));
    }

    /** The {@code /tokenize} body: {@code prompt} or {@code messages}. */
    public int[] tokenize(JsonRequest body, ServedModel model) {
        body.allowOnly(Set.of("model", "prompt", "messages", "add_special_tokens", "add_generation_prompt"));
        if (body.has("messages")) {
            var template = model.chatTemplate().orElseThrow(() -> ApiError.invalid(
                    "The model " + model.name() + " has no chat template.", "messages"));
            String rendered;
            try {
                rendered = template.render(messages(body), body.bool("add_generation_prompt").orElse(true));
            } catch (ChatTemplateException e) {
                throw ApiError.invalid("The chat template rejected the messages: " + e.getMessage(), "messages");
            }
            return model.tokenizer().encode(rendered, body.bool("add_special_tokens").orElse(false));
        }
        String prompt = body.string("prompt").orElseThrow(() -> ApiError.invalid("Give `prompt` or `messages`.", "prompt"));
        return model.tokenizer().encode(prompt, body.bool("add_special_tokens").orElse(true));
    }

    private GenerationJob job(GenerationJob.Kind kind, String idPrefix, JsonRequest body, RequestedModel model,
                              List<GenerationJob.Prompt> prompts, int n, boolean echo, Optional<ToolCalling> tools) {
        boolean stream = body.bool("stream").orElse(false);
        boolean includeUsage = false;
        Optional<JsonRequest> options = body.object("stream_options");
        if (options.isPresent()) {
            if (!stream) {
                throw ApiError.invalid("Stream options can only be defined when `stream=True`.", "stream_options");
            }
            options.get().allowOnly(Set.of("include_usage", "continuous_usage_stats"));
            includeUsage = options.get().bool("include_usage").orElse(false);
        }
        body.string("user");
        int priority = body.integer("priority").orElse(0);
        String id = idPrefix + UUID.randomUUID().toString().replace("-", "");
        return new GenerationJob(kind, id, System.currentTimeMillis() / 1000, model, prompts, n, stream, includeUsage,
                echo, priority, tools);
    }

    private static SamplingParams.Builder sampling(JsonRequest body) {
        if (body.raw("logit_bias").filter(v -> !(v.isObject() && v.isEmpty())).isPresent()) {
            throw ApiError.invalid("logit_bias is not supported.", "logit_bias");
        }
        SamplingParams.Builder b = SamplingParams.builder().n(n(body));
        body.number("temperature").ifPresent(b::temperature);
        body.number("top_p").ifPresent(b::topP);
        body.integer("top_k").ifPresent(b::topK);
        body.number("min_p").ifPresent(b::minP);
        body.number("presence_penalty").ifPresent(b::presencePenalty);
        body.number("frequency_penalty").ifPresent(b::frequencyPenalty);
        body.number("repetition_penalty").ifPresent(b::repetitionPenalty);
        body.int64("seed").ifPresent(b::seed);
        body.integer("min_tokens").ifPresent(b::minTokens);
        body.bool("ignore_eos").ifPresent(b::ignoreEos);
        body.bool("skip_special_tokens").ifPresent(b::skipSpecialTokens);
        b.stop(body.stringOrList("stop"));
        b.stopTokenIds(new HashSet<>(body.intList("stop_token_ids")));
        return b;
    }

    /** Builds the parameters, turning SamplingParams' validation (messages start with the field) into a 400. */
    private static SamplingParams build(SamplingParams.Builder b, int maxTokens) {
        try {
            return b.maxTokens(maxTokens).build();
        } catch (IllegalArgumentException e) {
            String message = e.getMessage();
            int end = 0;
            while (end < message.length() && (Character.isLetterOrDigit(message.charAt(end)) || message.charAt(end) == '_')) {
                end++;
            }
            throw ApiError.invalid(message, end > 0 ? message.substring(0, end) : null);
        }
    }

    private static int n(JsonRequest body) {
        int n = body.integer("n").orElse(1);
        if (n < 1 || n > MAX_N) {
            throw ApiError.invalid("n must be in [1, " + MAX_N + "], got " + n + ".", "n");
        }
        return n;
    }

    private static void checkTopLogprobs(String field, int k) {
        if (k < 0 || k > SamplingParams.MAX_LOGPROBS) {
            throw ApiError.invalid(field + " must be in [0, " + SamplingParams.MAX_LOGPROBS + "], got " + k + ".", field);
        }
    }

    /** vLLM's rule: absent means the rest of the context; present, prompt + max_tokens must fit. */
    private static int maxTokens(JsonRequest body, String field, ServedModel model, int promptLen, String promptField) {
        int limit = model.maxModelLen();
        Optional<Integer> requested = body.integer(field);
        if (requested.isEmpty()) {
            if (promptLen >= limit) {
                throw ApiError.invalid("This model's maximum context length is " + limit + " tokens. However, your "
                        + "request has " + promptLen + " input tokens. Please reduce the length of the input.", promptField);
            }
            return limit - promptLen;
        }
        int max = requested.get();
        if (max < 1) {
            throw ApiError.invalid(field + " must be at least 1, got " + max + ".", field);
        }
        if ((long) promptLen + max > limit) {
            throw ApiError.invalid("This model's maximum context length is " + limit + " tokens. However, you requested "
                    + ((long) promptLen + max) + " tokens (" + promptLen + " in the messages, " + max
                    + " in the completion). Please reduce the length of the messages or completion.",
                    promptLen >= limit ? promptField : field);
        }
        return max;
    }

    private record PromptInput(int[] ids, String text) {
    }

    private static List<PromptInput> promptInputs(JsonRequest body, ServedModel model, boolean addSpecial) {
        JsonNode prompt = body.raw("prompt").orElseThrow(() -> ApiError.invalid("`prompt` is required.", "prompt"));
        List<PromptInput> out = new ArrayList<>();
        if (prompt.isTextual()) {
            out.add(textPrompt(prompt.textValue(), model, addSpecial));
        } else if (prompt.isArray() && !prompt.isEmpty() && prompt.get(0).isNumber()) {
            out.add(idPrompt(prompt, model));
        } else if (prompt.isArray() && !prompt.isEmpty()) {
            for (JsonNode p : prompt) {
                if (p.isTextual()) {
                    out.add(textPrompt(p.textValue(), model, addSpecial));
                } else if (p.isArray()) {
                    out.add(idPrompt(p, model));
                } else {
                    throw badPrompt();
                }
            }
        } else {
            throw prompt.isArray() ? ApiError.invalid("`prompt` must not be empty.", "prompt") : badPrompt();
        }
        return out;
    }

    private static ApiError badPrompt() {
        return ApiError.invalid("`prompt` must be a string, an array of strings, an array of token ids or an array of "
                + "token id arrays.", "prompt");
    }

    private static PromptInput textPrompt(String text, ServedModel model, boolean addSpecial) {
        int[] ids = model.tokenizer().encode(text, addSpecial);
        if (ids.length == 0) {
            throw ApiError.invalid("The prompt is empty.", "prompt");
        }
        return new PromptInput(ids, text);
    }

    private static PromptInput idPrompt(JsonNode array, ServedModel model) {
        if (array.isEmpty()) {
            throw ApiError.invalid("A prompt of token ids must not be empty.", "prompt");
        }
        int[] ids = new int[array.size()];
        for (int i = 0; i < ids.length; i++) {
            JsonNode v = array.get(i);
            if (!v.isIntegralNumber()) {
                throw badPrompt();
            }
            // NOTE: exact, not v.longValue(): 2^64 + 403 must not wrap around to token 403.
            BigInteger id = JsonIntegers.integer("prompt", v);
            if (id.signum() < 0 || id.compareTo(BigInteger.valueOf(model.vocabSize())) >= 0) {
                throw ApiError.invalid("Token id " + id + " is out of vocabulary (0.." + (model.vocabSize() - 1) + ").",
                        "prompt");
            }
            ids[i] = id.intValueExact();
        }
        return new PromptInput(ids, model.tokenizer().decode(ids, true));
    }

    private static List<ChatMessage> messages(JsonRequest body) {
        JsonNode messages = body.raw("messages").orElseThrow(() -> ApiError.invalid("`messages` is required.", "messages"));
        if (!messages.isArray() || messages.isEmpty()) {
            throw ApiError.invalid("`messages` must be a non-empty array of messages.", "messages");
        }
        List<ChatMessage> out = new ArrayList<>();
        for (int i = 0; i < messages.size(); i++) {
            JsonNode m = messages.get(i);
            String where = "messages[" + i + "]";
            if (!m.isObject()) {
                throw ApiError.invalid(where + " must be an object with `role` and `content`.", where);
            }
            JsonNode role = m.get("role");
            if (role == null || !role.isTextual() || !ROLES.contains(role.textValue())) {
                throw ApiError.invalid(where + ".role must be one of " + ROLES + ".", where + ".role");
            }
            JsonNode toolCalls = m.get("tool_calls");
            if (toolCalls != null && !toolCalls.isNull() && !toolCalls.isEmpty()) {
                throw ApiError.invalid("tool calls are not supported.", where + ".tool_calls");
            }
            out.add(new ChatMessage(role.textValue(), content(m.get("content"), where + ".content")));
        }
        return out;
    }

    /** A string, or an array of {@code {"type": "text", "text": ...}} parts joined by newlines (as vLLM). */
    static String content(JsonNode content, String where) {
        if (content == null || content.isNull()) {
            return "";
        }
        if (content.isTextual()) {
            return content.textValue();
        }
        if (!content.isArray()) {
            throw ApiError.invalid(where + " must be a string or an array of content parts.", where);
        }
        List<String> parts = new ArrayList<>();
        for (JsonNode part : content) {
            JsonNode type = part.get("type");
            JsonNode text = part.get("text");
            if (type == null || !"text".equals(type.asText())) {
                throw ApiError.invalid(where + ": content part type " + (type == null ? "(missing)" : "'" + type.asText()
                        + "'") + " is not supported; only text parts are.", where);
            }
            if (text == null || !text.isTextual()) {
                throw ApiError.invalid(where + ": a text part needs a string `text`.", where);
            }
            parts.add(text.textValue());
        }
        return String.join("\n", parts);
    }

    private static Set<String> union(Set<String> a, Set<String> b) {
        Set<String> all = new HashSet<>(a);
        all.addAll(b);
        return Set.copyOf(all);
    }
}
