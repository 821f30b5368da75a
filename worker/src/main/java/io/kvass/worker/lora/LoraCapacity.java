package io.kvass.worker.lora;

/**
 * What a backend reserves for LoRA: {@code maxLoras} adapter slots (1..maxLoras; slot 0 is the base
 * model) of rank up to {@code maxRank}. vLLM's {@code --max-loras} and {@code --max-lora-rank}.
 */
public record LoraCapacity(int maxLoras, int maxRank) {
    /** No LoRA at all: only the base model. */
    public static final LoraCapacity NONE = new LoraCapacity(0, 0);

    public LoraCapacity {
        if (maxLoras < 0 || maxRank < 0 || (maxLoras > 0) != (maxRank > 0)) {
            throw new IllegalArgumentException("max_loras and max_lora_rank must both be positive (or both 0), got "
                    + maxLoras + " and " + maxRank);
        }
    }

    public boolean enabled() {
        return maxLoras > 0;
    }
}
