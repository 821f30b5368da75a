package io.kvass.worker.cpu;

import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraModule;
import io.kvass.worker.lora.LoraTarget;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.ModelConfig;
import java.util.List;

/**
 * LoRA on the CPU: the adapter slots, and each projection's low-rank update over a batch that mixes
 * adapters. In the spirit of Punica's SGMV, a step's tokens are grouped by slot once; for every
 * adapted projection each token then gets {@code y += scale * B (A x)} with its own slot's A and B:
 * a shrink ({@code rank} dot products) then an expand ({@code rank} axpys). Base-model tokens cost nothing.
 */
final class CpuLora {
    /** Below this many multiply-adds a projection's update runs on the calling thread. */
    private static final long PARALLEL_MIN_MACS = 1 << 16;
    private static final int TARGETS = LoraTarget.values().length;

    private final ModelConfig config;
    private final LoraCapacity capacity;
    private final LoraModule[][][] slots; // [slot][layer][target]; null: empty slot or module not adapted

    CpuLora(ModelConfig config, LoraCapacity capacity) {
        this.config = config;
        this.capacity = capacity;
        this.slots = new LoraModule[capacity.maxLoras() + 1][][];
    }

    /**
     * The tokens of one step that use an adapter, sorted by slot.
     *
     * @param tokens token indices into the step's {@code [numTokens, ...]} activations
     * @param slots  each entry's adapter slot (non-decreasing)
     */
    record Groups(int[] tokens, int[] slots) {
        static final Groups NONE = new Groups(new int[0], new int[0]);

        boolean isEmpty() {
            return tokens.length == 0;
        }
    }

    void load(int slot, LoraWeights w) {
        checkSlot(slot);
        w.requireFits(config, capacity.maxRank());
        LoraModule[][] layers = new LoraModule[config.numLayers()][TARGETS];
        for (LoraModule m : w.modules()) {
            layers[m.layer()][m.target().ordinal()] = m;
        }
        slots[slot] = layers;
    }

    void unload(int slot) {
        checkSlot(slot);
        slots[slot] = null;
    }

    private void checkSlot(int slot) {
        if (slot < 1 || slot > capacity.maxLoras()) {
            throw new IllegalArgumentException("LoRA slot " + slot + " outside 1.." + capacity.maxLoras());
        }
    }

    /** Groups the step's tokens by adapter slot; rejects a slot that holds no adapter. */
    Groups group(List<SequenceForward> batch, Step step) {
        int[] count = new int[slots.length];
        for (int s = 0; s < batch.size(); s++) {
            int slot = batch.get(s).adapterSlot();
            if (slot != 0 && (slot < 0 || slot >= slots.length || slots[slot] == null)) {
                throw new IllegalArgumentException("sequence " + s + " uses LoRA slot " + slot + ", which holds no adapter");
            }
            count[slot] += batch.get(s).numTokens();
        }
        int adapted = step.numTokens - count[0];
        if (adapted == 0) {
            return Groups.NONE;
        }
        int[] next = new int[slots.length]; // counting sort: where each slot's run starts
        for (int slot = 2; slot < slots.length; slot++) {
            next[slot] = next[slot - 1] + count[slot - 1];
        }
        int[] tokens = new int[adapted];
        int[] slotOf = new int[adapted];
        for (int t = 0; t < step.numTokens; t++) {
            int slot = batch.get(step.sequenceOf[t]).adapterSlot();
            if (slot != 0) {
                int at = next[slot]++;
                tokens[at] = t;
                slotOf[at] = slot;
            }
        }
        return new Groups(tokens, slotOf);
    }

    /** {@code y[t] += scale * B (A x[t])} for every grouped token whose adapter adapts this projection. x: [n, in], y: [n, out]. */
    void apply(Groups groups, int layer, LoraTarget target, float[] x, float[] y, CpuThreads threads) {
        if (groups.isEmpty()) {
            return;
        }
        long macs = (long) groups.tokens.length * capacity.maxRank() * (target.inDim(config) + target.outDim(config));
        if (macs < PARALLEL_MIN_MACS) {
            apply(groups, layer, target, x, y, 0, groups.tokens.length);
        } else {
            threads.forRange(groups.tokens.length, (start, end) -> {
                apply(groups, layer, target, x, y, start, end);
                return 0;
            });
        }
    }

    private void apply(Groups groups, int layer, LoraTarget target, float[] x, float[] y, int start, int end) {
        float[] u = new float[capacity.maxRank()]; // [rank]: one token's A x
        for (int i = start; i < end; i++) {
            LoraModule m = slots[groups.slots[i]][layer][target.ordinal()];
            if (m == null) {
                continue;
            }
            int t = groups.tokens[i], in = m.inDim(), out = m.outDim();
            for (int k = 0; k < m.rank(); k++) {
                u[k] = VectorMath.dot(m.a(), k * in, x, t * in, in) * m.scale();
            }
            for (int k = 0; k < m.rank(); k++) {
                VectorMath.axpy(u[k], m.bT(), k * out, y, t * out, out);
            }
        }
    }
}
