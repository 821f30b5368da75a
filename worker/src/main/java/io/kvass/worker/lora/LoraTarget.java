package io.kvass.worker.lora;

import io.kvass.worker.model.ModelConfig;
import java.util.Arrays;
import java.util.Optional;
import java.util.stream.Collectors;

/** The projections of a Llama-family layer a LoRA adapter may adapt, with their PEFT module names. */
public enum LoraTarget {
    Q_PROJ("self_attn.q_proj"),
    K_PROJ("self_attn.k_proj"),
    V_PROJ("self_attn.v_proj"),
    O_PROJ("self_attn.o_proj"),
    GATE_PROJ("mlp.gate_proj"),
    UP_PROJ("mlp.up_proj"),
    DOWN_PROJ("mlp.down_proj");

    private static final LoraTarget[] ALL = values();

    private final String path;
    private final String shortName;

    LoraTarget(String path) {
        this.path = path;
        this.shortName = path.substring(path.indexOf('.') + 1);
    }

    /** PEFT's short name, as {@code target_modules} usually lists it ({@code q_proj}). */
    public String shortName() {
        return shortName;
    }

    /** The module's path inside a decoder layer ({@code self_attn.q_proj}). */
    public String path() {
        return path;
    }

    /** The module's full name in a Hugging Face causal LM ({@code model.layers.3.self_attn.q_proj}). */
    public String moduleName(int layer) {
        return "model.layers." + layer + "." + path;
    }

    /** Input features of the projection ({@code lora_A} is {@code [r, in]}). */
    public int inDim(ModelConfig c) {
        return switch (this) {
            case Q_PROJ, K_PROJ, V_PROJ, GATE_PROJ, UP_PROJ -> c.hiddenSize();
            case O_PROJ -> c.qDim();
            case DOWN_PROJ -> c.intermediateSize();
        };
    }

    /** Output features of the projection ({@code lora_B} is {@code [out, r]}). */
    public int outDim(ModelConfig c) {
        return switch (this) {
            case Q_PROJ -> c.qDim();
            case K_PROJ, V_PROJ -> c.kvDim();
            case O_PROJ, DOWN_PROJ -> c.hiddenSize();
            case GATE_PROJ, UP_PROJ -> c.intermediateSize();
        };
    }

    public static Optional<LoraTarget> ofPath(String path) {
        return Arrays.stream(ALL).filter(t -> t.path.equals(path)).findFirst();
    }

    static int count() {
        return ALL.length;
    }

    static LoraTarget of(int ordinal) {
        return ALL[ordinal];
    }

    static String supported() {
        return Arrays.stream(ALL).map(LoraTarget::shortName).collect(Collectors.joining(", "));
    }
}
