package io.kvass.http.api;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

/** OpenAI's {@code usage}: prompt tokens count once per prompt, completion tokens once per choice. */
public record Usage(int promptTokens, int completionTokens) {

    public ObjectNode toJson() {
        ObjectNode u = JsonNodeFactory.instance.objectNode();
        u.put("prompt_tokens", promptTokens);
        u.put("total_tokens", promptTokens + completionTokens);
        u.put("completion_tokens", completionTokens);
        return u;
    }
}
