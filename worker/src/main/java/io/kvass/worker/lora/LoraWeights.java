package io.kvass.worker.lora;

import io.kvass.worker.model.ModelConfig;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Optional;

/**
 * A LoRA adapter decoded to fp32 in host memory: the adapted projections of each layer. Immutable;
 * backends copy (GPU) or reference (CPU) it when it is loaded into a slot.
 *
 * @see LoraLoader
 */
public final class LoraWeights {
    private final Path dir;
    private final String fingerprint;
    private final int numLayers;
    private final LoraModule[] modules; // [layer * targets + target], null where the adapter leaves it alone

    LoraWeights(Path dir, String fingerprint, int numLayers, List<LoraModule> modules) {
        this.dir = dir;
        this.fingerprint = fingerprint;
        this.numLayers = numLayers;
        this.modules = new LoraModule[numLayers * LoraTarget.count()];
        for (LoraModule m : modules) {
            int at = index(m.layer(), m.target());
            if (this.modules[at] != null) {
                throw new IllegalArgumentException("two LoRA modules for " + m.target() + " of layer " + m.layer());
            }
            this.modules[at] = m;
        }
    }

    private static int index(int layer, LoraTarget target) {
        return layer * LoraTarget.count() + target.ordinal();
    }

    /** The directory it was read from (its real path). */
    public Path dir() {
        return dir;
    }

    /** SHA-256 of {@code adapter_config.json} and {@code adapter_model.safetensors}, hex. */
    public String fingerprint() {
        return fingerprint;
    }

    public int numLayers() {
        return numLayers;
    }

    public Optional<LoraModule> module(int layer, LoraTarget target) {
        Objects.checkIndex(layer, numLayers);
        return Optional.ofNullable(modules[index(layer, target)]);
    }

    public List<LoraModule> modules() {
        return Arrays.stream(modules).filter(Objects::nonNull).toList();
    }

    /** The largest rank of any module. */
    public int maxRank() {
        return Arrays.stream(modules).filter(Objects::nonNull).mapToInt(LoraModule::rank).max().orElse(0);
    }

    /**
     * Checks that a backend of {@code config}'s shapes with slots of rank up to {@code maxRank} can hold
     * this adapter; the message names the first mismatch.
     *
     * @throws IllegalArgumentException when it cannot
     */
    public void requireFits(ModelConfig config, int maxRank) {
        if (numLayers != config.numLayers()) {
            throw new IllegalArgumentException("adapter " + dir + " has " + numLayers + " layers, the model "
                    + config.numLayers());
        }
        for (LoraModule m : modules()) {
            if (m.inDim() != m.target().inDim(config) || m.outDim() != m.target().outDim(config)) {
                throw new IllegalArgumentException("adapter " + dir + ": " + m.target() + " of layer " + m.layer()
                        + " is [" + m.outDim() + " x " + m.inDim() + "], the model's projection is not");
            }
            if (m.rank() > maxRank) {
                throw new IllegalArgumentException("adapter " + dir + " has rank " + m.rank()
                        + ", above this backend's maximum " + maxRank);
            }
        }
    }

    public long byteSize() {
        return Arrays.stream(modules).filter(Objects::nonNull).mapToLong(LoraModule::byteSize).sum();
    }

    @Override
    public String toString() {
        return "LoraWeights[" + dir + ", " + modules().size() + " modules, rank " + maxRank() + "]";
    }
}
