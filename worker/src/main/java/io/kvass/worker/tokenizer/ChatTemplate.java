package io.kvass.worker.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Clock;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * A model's Hugging Face chat template (Jinja2), rendered with Jinjava the way {@code apply_chat_template}
 * renders it: variables {@code messages}, {@code add_generation_prompt}, the special tokens of
 * tokenizer_config.json ({@code bos_token}, {@code eos_token}, ...) and any extra variables.
 * Immutable and thread-safe.
 */
public final class ChatTemplate {

    private final String source;
    private final String adapted;
    private final Map<String, String> specialTokens;
    private final Clock clock;
    private final String origin;

    private ChatTemplate(String source, String adapted, Map<String, String> specialTokens, Clock clock, String origin) {
        this.source = source;
        this.adapted = adapted;
        this.specialTokens = specialTokens;
        this.clock = clock;
        this.origin = origin;
    }

    /**
     * The chat template of a model directory: {@code chat_template.jinja} if present, else tokenizer_config.json's
     * {@code chat_template} (a string, or a list of {@code {name, template}} of which "default" is used).
     * Empty if the model has none.
     *
     * @throws ChatTemplateException if the template has a syntax error or uses filters or tests that are not
     *     available
     * @throws IllegalArgumentException if the directory is missing or tokenizer_config.json is corrupt
     */
    public static Optional<ChatTemplate> load(Path modelDir) {
        if (!Files.isDirectory(modelDir)) {
            throw new IllegalArgumentException("model directory does not exist or is not a directory: " + modelDir);
        }
        TokenizerConfig config = TokenizerConfig.read(modelDir);
        Path jinjaFile = modelDir.resolve("chat_template.jinja");
        if (Files.isRegularFile(jinjaFile)) {
            return Optional.of(of(TokenizerConfig.readString(jinjaFile), config.specialTokens(), jinjaFile.toString()));
        }
        Path configFile = modelDir.resolve("tokenizer_config.json");
        JsonNode template = config.tokenizerConfig().path("chat_template");
        if (template.isTextual()) {
            return Optional.of(of(template.textValue(), config.specialTokens(), configFile.toString()));
        }
        if (template.isArray()) {
            List<String> names = new ArrayList<>();
            for (JsonNode named : template) {
                names.add(named.path("name").asText());
                if ("default".equals(named.path("name").asText()) && named.path("template").isTextual()) {
                    return Optional.of(of(named.path("template").textValue(), config.specialTokens(), configFile.toString()));
                }
            }
            throw new ChatTemplateException("no \"default\" among the chat templates " + names + " in " + configFile);
        }
        return Optional.empty();
    }

    /**
     * A template from source; {@code specialTokens} maps names such as {@code bos_token} to their text.
     *
     * @throws ChatTemplateException if the template has a syntax error or uses unavailable filters or tests
     */
    public static ChatTemplate of(String source, Map<String, String> specialTokens) {
        return of(source, specialTokens, "inline template");
    }

    private static ChatTemplate of(String source, Map<String, String> specialTokens, String origin) {
        JinjaSource adapted = JinjaSource.adapt(source);
        List<String> unknown = new ArrayList<>();
        adapted.filters().stream().filter(f -> !Jinja.knowsFilter(f)).map(f -> "filter '" + f + "'").forEach(unknown::add);
        adapted.tests().stream().filter(t -> !Jinja.knowsTest(t)).map(t -> "test '" + t + "'").forEach(unknown::add);
        if (!unknown.isEmpty()) {
            throw new ChatTemplateException("chat template of " + origin + " uses unsupported " + String.join(", ", unknown));
        }
        Jinja.checkSyntax(adapted.source(), origin);
        return new ChatTemplate(source, adapted.source(), Map.copyOf(specialTokens), Clock.systemDefaultZone(), origin);
    }

    /** The same template with {@code strftime_now} reading {@code clock} (for tests, or a fixed server zone). */
    public ChatTemplate withClock(Clock clock) {
        return new ChatTemplate(source, adapted, specialTokens, clock, origin);
    }

    /** The template as the model ships it. */
    public String source() {
        return source;
    }

    public String render(List<ChatMessage> messages, boolean addGenerationPrompt) {
        return render(messages, addGenerationPrompt, Map.of());
    }

    /**
     * Renders a conversation. {@code extraVariables} (e.g. {@code enable_thinking}) are visible to the template
     * and override the defaults.
     *
     * @throws ChatTemplateException if the template rejects the conversation or fails
     */
    public String render(List<ChatMessage> messages, boolean addGenerationPrompt, Map<String, ?> extraVariables) {
        List<Map<String, Object>> msgs = new ArrayList<>(messages.size());
        for (ChatMessage m : messages) {
            Map<String, Object> map = new LinkedHashMap<>();
            map.put("role", m.role());
            map.put("content", m.content());
            msgs.add(map);
        }
        return renderMessages(msgs, addGenerationPrompt, extraVariables);
    }

    /**
     * Renders messages given as the maps templates see ({@code role}, {@code content}, and for tool calling
     * {@code tool_calls}, {@code tool_call_id}, {@code name}: plain maps, lists, strings and numbers), as
     * {@code apply_chat_template} receives them; pass {@code tools} among {@code extraVariables}.
     *
     * @throws ChatTemplateException if the template rejects the conversation or fails
     */
    public String renderMessages(List<Map<String, Object>> msgs, boolean addGenerationPrompt,
                                 Map<String, ?> extraVariables) {
        Map<String, Object> context = new HashMap<>(specialTokens);
        context.put("messages", msgs);
        context.put("add_generation_prompt", addGenerationPrompt);
        context.putAll(extraVariables);
        return Jinja.render(adapted, context, clock, origin);
    }
}
