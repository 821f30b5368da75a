package io.kvass.worker.cuda;

import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraModule;
import io.kvass.worker.lora.LoraTarget;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.ModelLoadException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;

/**
 * LoRA adapter slots on the GPU and their batched update: in one step each token gets its own slot's
 * {@code y += scale * B (A x)} on every adapted projection, the base model's tokens (slot 0) nothing.
 * Short runs of tokens (decode, small chunks) go in tiles of one slot to lora.cu's shrink and expand
 * kernels (in the manner of Punica's SGMV); a sequence with many tokens in the step to two cuBLAS GEMMs
 * per projection. Every slot owns a fixed region sized for {@code max_lora_rank} in every
 * projection of every layer (as vLLM's stacked buffers), so loading an adapter copies its weights
 * (bf16, as vLLM keeps them) and rewrites its descriptors, and never allocates; the kernels find an
 * adapter through the descriptor table, so captured graphs stay valid across loads.
 */
final class CudaLora {
    /** Projections that share an input: one shrink per group, one expand into the group's output. */
    enum Group {
        QKV(LoraTarget.Q_PROJ, LoraTarget.K_PROJ, LoraTarget.V_PROJ),
        O(LoraTarget.O_PROJ),
        GATE_UP(LoraTarget.GATE_PROJ, LoraTarget.UP_PROJ),
        DOWN(LoraTarget.DOWN_PROJ);

        final LoraTarget[] targets;

        Group(LoraTarget... targets) {
            this.targets = targets;
        }
    }

    /** lora.cu's LoraDesc. */
    static final int DESC_BYTES = 32;
    private static final int TARGETS = LoraTarget.values().length;
    private static final int MAX_GROUP_TARGETS = 3;
    private static final int SHRINK_THREADS = 256;
    /** Below this many blocks, a kernel gets 4x as many smaller ones (one rank, 32 threads): more SMs reading. */
    private static final int FEW_BLOCKS = 256;
    /** From this many tokens (prefill) there are tiles enough to fill the GPU with 64-thread shrink blocks. */
    private static final int MANY_TOKENS = 256;
    private static final int EXPAND_THREADS = 128;
    /** Output columns per expand thread (lora.cu's EXPAND_COLS); every projection's width must be a multiple. */
    private static final int EXPAND_COLUMNS = 4;
    /** The expand stages a tile's shrunk rows in 48 KB of shared memory: 8 tokens x 3 projections x rank floats. */
    static final int MAX_RANK = 512;

    private final CudaDevice device;
    private final CudaKernels kernels;
    private final ModelConfig config;
    private final LoraCapacity capacity;
    private final DeviceBuffer weights;   // slot 1..maxLoras: [layer][target] A then B, each room for maxRank
    private final DeviceBuffer table;     // LoraDesc [slot 0..maxLoras][layer][target]
    private final ByteBuffer tableHost;   // pinned mirror of the table
    private final DeviceBuffer shrunk;    // [tokens, MAX_GROUP_TARGETS, maxRank] fp32: scale * A x
    private final DeviceBuffer runShrunk; // [tokens, maxRank] bf16: one projection's scale * A x for a long run
    private final CuBlas blas;
    private final long[] moduleOffset;    // bytes into a slot's region of (layer, target)
    private final long slotBytes;
    private final boolean[] loaded;

    CudaLora(CudaDevice device, CudaKernels kernels, CuBlas blas, ModelConfig config, LoraCapacity capacity, int tokens) {
        if (!capacity.enabled()) {
            throw new IllegalArgumentException("no LoRA slots asked for");
        }
        for (LoraTarget t : LoraTarget.values()) {
            if (t.outDim(config) % EXPAND_COLUMNS != 0) {
                throw new ModelLoadException("LoRA on the CUDA backend needs projection widths divisible by "
                        + EXPAND_COLUMNS + "; " + t.shortName() + " has " + t.outDim(config));
            }
        }
        if (capacity.maxRank() > MAX_RANK) {
            throw new ModelLoadException("--max-lora-rank " + capacity.maxRank() + " is above the CUDA backend's "
                    + MAX_RANK);
        }
        this.device = device;
        this.kernels = kernels;
        this.blas = blas;
        this.config = config;
        this.capacity = capacity;
        this.moduleOffset = new long[config.numLayers() * TARGETS];
        long offset = 0;
        for (int layer = 0; layer < config.numLayers(); layer++) {
            for (LoraTarget t : LoraTarget.values()) {
                moduleOffset[layer * TARGETS + t.ordinal()] = offset;
                offset += moduleBytes(config, t, capacity.maxRank());
            }
        }
        this.slotBytes = offset;
        this.weights = device.allocate(capacity.maxLoras() * slotBytes, "LoRA adapter slots");
        this.table = device.allocate(tableBytes(config, capacity), "LoRA descriptors");
        this.tableHost = device.allocateHost(table.bytes());
        this.shrunk = device.allocate(4L * tokens * MAX_GROUP_TARGETS * capacity.maxRank(), "LoRA activations");
        this.runShrunk = device.allocate(2L * tokens * capacity.maxRank(), "LoRA activations");
        this.loaded = new boolean[capacity.maxLoras() + 1];
        device.zero(table);
        device.synchronize();
    }

    private static long moduleBytes(ModelConfig c, LoraTarget t, int rank) {
        long bytes = 2L * rank * (t.inDim(c) + t.outDim(c));
        return (bytes + 15) & ~15L; // keep every A 16-byte aligned for the shrink's vector loads
    }

    private static long tableBytes(ModelConfig c, LoraCapacity capacity) {
        return (long) DESC_BYTES * (capacity.maxLoras() + 1) * c.numLayers() * TARGETS;
    }

    int maxLoras() {
        return capacity.maxLoras();
    }

    int maxRank() {
        return capacity.maxRank();
    }

    /** Copies {@code w} into {@code slot} (replacing what was there); the caller makes sure no step is running. */
    void load(int slot, LoraWeights w) {
        checkSlot(slot);
        w.requireFits(config, capacity.maxRank());
        device.synchronize();
        clearDescriptors(slot);
        ByteBuffer stage = null;
        for (LoraModule m : w.modules()) {
            long bytes = 2L * m.rank() * (m.inDim() + m.outDim());
            if (stage == null || stage.capacity() < bytes) {
                stage = ByteBuffer.allocateDirect((int) bytes).order(ByteOrder.LITTLE_ENDIAN);
            }
            stage.clear();
            for (float v : m.a()) {                     // A: [rank, in] as PEFT stores it
                stage.putShort(Bf16.of(v));
            }
            for (int o = 0; o < m.outDim(); o++) {      // B: [out, rank], from the module's B^T
                for (int r = 0; r < m.rank(); r++) {
                    stage.putShort(Bf16.of(m.bT()[r * m.outDim() + o]));
                }
            }
            long a = (slot - 1) * slotBytes + moduleOffset[m.layer() * TARGETS + m.target().ordinal()];
            long b = a + 2L * m.rank() * m.inDim();
            device.upload(weights, a, stage.flip(), bytes);
            putDescriptor(slot, m.layer(), m.target(), weights.address(a), weights.address(b), m.rank(), m.scale());
        }
        uploadDescriptors(slot);
        loaded[slot] = true;
    }

    void unload(int slot) {
        checkSlot(slot);
        device.synchronize();
        clearDescriptors(slot);
        uploadDescriptors(slot);
        loaded[slot] = false;
    }

    /** Rejects a batch naming a slot that holds no adapter, with the message the CPU backend gives. */
    void checkSlots(List<SequenceForward> batch) {
        for (int s = 0; s < batch.size(); s++) {
            int slot = batch.get(s).adapterSlot();
            if (slot != 0 && (slot < 0 || slot >= loaded.length || !loaded[slot])) {
                throw new IllegalArgumentException("sequence " + s + " uses LoRA slot " + slot + ", which holds no adapter");
            }
        }
    }

    /**
     * Adds each token's adapter update to a projection group's output: {@code x} {@code [n, in]} bf16 is
     * the group's input, {@code y} its {@code [n, width]} output (the group's projections side by side),
     * fp32 accumulated or bf16 re-rounded. Tiles run on lora.cu's kernels ({@code n} covers padding, so a
     * graph's grid fits any step of its bucket); long runs (prefill chunks) on cuBLAS's tensor cores, two
     * GEMMs per projection with {@code u} rounded to bf16 between them (as vLLM's kernels do).
     */
    void apply(Group group, int n, int layer, Step inputs, long x, long y, boolean yBf16) {
        LoraTarget first = group.targets[0];
        int in = first.inDim(config);
        int[] outs = new int[MAX_GROUP_TARGETS];
        int width = 0;
        for (int j = 0; j < group.targets.length; j++) {
            outs[j] = group.targets[j].outDim(config);
            width += outs[j];
        }
        for (StepInputs.LoraRun run : inputs.runs()) {
            applyRun(group, run, layer, in, width, x, y, yBf16);
        }
        if (!inputs.anyTiles()) {
            return;
        }
        int tiles = maxTiles(n);
        // NOTE: few tiles (decode) get a block per rank: the block count, not the work, bounds those steps.
        int ranksPerBlock = (long) tiles * group.targets.length * capacity.maxRank() / 4 < FEW_BLOCKS ? 1 : 4;
        int rankBlocks = (capacity.maxRank() + ranksPerBlock - 1) / ranksPerBlock;
        int threads = n >= MANY_TOKENS ? 64 : SHRINK_THREADS;
        kernels.loraShrink(ranksPerBlock, tiles, group.targets.length, rankBlocks, threads, inputs.tokenSlots(),
                inputs.order(), inputs.tileStart(), inputs.tileCount(), table.address(), config.numLayers(), layer,
                first.ordinal(), x, in, shrunk.address(), capacity.maxRank());
        int shared = 4 * StepInputs.LORA_TILE_TOKENS * group.targets.length * capacity.maxRank();
        int expandThreads = (long) tiles * width / (EXPAND_THREADS * EXPAND_COLUMNS) < FEW_BLOCKS ? 32 : EXPAND_THREADS;
        int perBlock = expandThreads * EXPAND_COLUMNS;
        kernels.loraExpand((width + perBlock - 1) / perBlock, tiles, expandThreads, shared,
                inputs.tokenSlots(), inputs.order(), inputs.tileStart(), inputs.tileCount(), table.address(),
                config.numLayers(), layer, first.ordinal(), group.targets.length, shrunk.address(), capacity.maxRank(), y,
                width, yBf16 ? 1 : 0, outs[0], outs[1], outs[2]);
    }

    private void applyRun(Group group, StepInputs.LoraRun run, int layer, int in, int width, long x, long y, boolean yBf16) {
        int column = 0;
        for (LoraTarget t : group.targets) {
            int at = descriptorIndex(run.slot(), layer, t) * DESC_BYTES;
            int rank = tableHost.getInt(at + 16);
            if (rank > 0) {
                long a = tableHost.getLong(at), b = tableHost.getLong(at + 8);
                float scale = tableHost.getFloat(at + 20);
                long rows = x + 2L * run.firstToken() * in;
                blas.gemm(a, in, rows, in, runShrunk.address(), rank, true, rank, run.count(), in, scale, 0f);
                long out = y + (yBf16 ? 2L : 4L) * ((long) run.firstToken() * width + column);
                blas.gemm(b, rank, runShrunk.address(), rank, out, width, yBf16, t.outDim(config), run.count(), rank, 1f, 1f);
            }
            column += t.outDim(config);
        }
    }

    /** The most tiles {@code n} tokens can make: every slot may start a tile of its own. */
    int maxTiles(int n) {
        return Math.min(n, (n + StepInputs.LORA_TILE_TOKENS - 1) / StepInputs.LORA_TILE_TOKENS + capacity.maxLoras());
    }

    /**
     * A step's LoRA work: the device addresses of the step-input sections the kernels read, whether any
     * tile has tokens, and the long runs that go to cuBLAS instead.
     */
    record Step(long tokenSlots, long order, long tileStart, long tileCount, boolean anyTiles,
                List<StepInputs.LoraRun> runs) {
    }

    private void checkSlot(int slot) {
        if (slot < 1 || slot > capacity.maxLoras()) {
            throw new IllegalArgumentException("LoRA slot " + slot + " outside 1.." + capacity.maxLoras());
        }
    }

    private int descriptorIndex(int slot, int layer, LoraTarget target) {
        return (slot * config.numLayers() + layer) * TARGETS + target.ordinal();
    }

    private void putDescriptor(int slot, int layer, LoraTarget target, long a, long b, int rank, float scale) {
        int at = descriptorIndex(slot, layer, target) * DESC_BYTES;
        tableHost.putLong(at, a);
        tableHost.putLong(at + 8, b);
        tableHost.putInt(at + 16, rank);
        tableHost.putFloat(at + 20, scale);
        tableHost.putLong(at + 24, 0);
    }

    private void clearDescriptors(int slot) {
        for (int layer = 0; layer < config.numLayers(); layer++) {
            for (LoraTarget t : LoraTarget.values()) {
                putDescriptor(slot, layer, t, 0, 0, 0, 0f);
            }
        }
    }

    private void uploadDescriptors(int slot) {
        long from = (long) descriptorIndex(slot, 0, LoraTarget.values()[0]) * DESC_BYTES;
        long bytes = (long) config.numLayers() * TARGETS * DESC_BYTES;
        device.upload(table, from, tableHost.slice((int) from, (int) bytes), bytes);
        device.synchronize();
    }
}
