package io.kvass.worker.model;

import java.util.Arrays;
import java.util.stream.Collectors;

/** Model families kvass runs; all are Llama-shaped decoders differing in small details. */
public enum Architecture {
    LLAMA("LlamaForCausalLM", false),
    MISTRAL("MistralForCausalLM", false),
    QWEN2("Qwen2ForCausalLM", true);

    private final String hfName;
    private final boolean alwaysQkvBias;

    Architecture(String hfName, boolean alwaysQkvBias) {
        this.hfName = hfName;
        this.alwaysQkvBias = alwaysQkvBias;
    }

    /** Qwen2 has q/k/v biases whatever {@code attention_bias} says. */
    public boolean alwaysQkvBias() {
        return alwaysQkvBias;
    }

    public String hfName() {
        return hfName;
    }

    public static Architecture ofHf(String name) {
        for (Architecture a : values()) {
            if (a.hfName.equals(name)) {
                return a;
            }
        }
        throw new ModelLoadException("unsupported architecture '" + name + "'; supported: "
                + Arrays.stream(values()).map(Architecture::hfName).collect(Collectors.joining(", ")));
    }
}
