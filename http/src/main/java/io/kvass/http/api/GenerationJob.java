package io.kvass.http.api;

import io.kvass.http.RequestedModel;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.http.tools.ToolCalling;
import java.util.List;
import java.util.Optional;

/**
 * One validated API request, ready for the engine: one engine request per prompt (a completions
 * batch has several), each with {@code n} completions.
 *
 * @param id           the response id ({@code cmpl-...} / {@code chatcmpl-...}); engine request ids derive from it
 * @param includeUsage {@code stream_options.include_usage}
 * @param model        the base model, and the LoRA adapter when the request named one
 * @param echo         completions' {@code echo}: the prompt text precedes each completion
 * @param tools        chat tool calling, when the output is read for calls ({@code tool_choice} other than none)
 */
public record GenerationJob(Kind kind, String id, long created, RequestedModel model, List<Prompt> prompts, int n,
                            boolean stream, boolean includeUsage, boolean echo, int priority,
                            Optional<ToolCalling> tools) {

    /** A job without tool calling. */
    public GenerationJob(Kind kind, String id, long created, RequestedModel model, List<Prompt> prompts, int n,
                         boolean stream, boolean includeUsage, boolean echo, int priority) {
        this(kind, id, created, model, prompts, n, stream, includeUsage, echo, priority, Optional.empty());
    }

    public enum Kind {
        COMPLETION, CHAT
    }

    /** One prompt: its token ids, its text (for echo) and its sampling parameters (max_tokens differs per prompt). */
    public record Prompt(int[] tokenIds, String text, SamplingParams params) {
        public Prompt {
            tokenIds = tokenIds.clone();
        }
    }

    public GenerationJob {
        prompts = List.copyOf(prompts);
    }

    /** Choices in the response: {@code n} per prompt, prompt-major (as vLLM and OpenAI number them). */
    public int numChoices() {
        return prompts.size() * n;
    }

    public int choiceIndex(int prompt, int completion) {
        return prompt * n + completion;
    }

    /** The engine's id of prompt {@code prompt}'s request. */
    public String engineRequestId(int prompt) {
        return id + "-" + prompt;
    }

    public boolean logprobs() {
        return prompts.getFirst().params().logprobs().isPresent();
    }
}
