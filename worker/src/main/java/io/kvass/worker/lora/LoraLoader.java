package io.kvass.worker.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.kvass.worker.model.DType;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.model.SafeTensorsFile;
import io.kvass.worker.model.Tensor;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Reads a PEFT LoRA adapter directory ({@code adapter_config.json} + {@code adapter_model.safetensors})
 * for a given base model, checking everything before a single weight is served: where it lives, what
 * the config asks for, and that every tensor fits the base model's projections.
 */
public final class LoraLoader {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    /** {@code base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_<A|B>.weight} */
    private static final Pattern TENSOR = Pattern.compile(
            "base_model\\.model\\.model\\.layers\\.(\\d+)\\.((?:self_attn|mlp)\\.\\w+)\\.lora_([AB])\\.weight");

    private final ModelConfig base;
    private final int maxRank;
    private final AdapterPathPolicy allowed;

    public LoraLoader(ModelConfig base, int maxRank, List<Path> allowedRoots) {
        this.base = base;
        this.maxRank = maxRank;
        this.allowed = new AdapterPathPolicy(allowedRoots);
    }

    /** Loads and validates the adapter in {@code dir}; throws {@link AdapterLoadException} naming the problem. */
    public LoraWeights load(Path dir) {
        Path real = resolve(dir);
        Path configFile = file(dir, real, CONFIG);
        Path weightsFile = weightsFile(dir, real);
        byte[] configBytes;
        JsonNode json;
        try {
            configBytes = Files.readAllBytes(configFile);
            json = new ObjectMapper().readTree(configBytes);
        } catch (IOException e) {
            throw new AdapterLoadException(dir, "cannot read " + CONFIG + ": " + e.getMessage(), e);
        }
        LoraConfig config = LoraConfig.parse(json, dir);
        try (Arena arena = Arena.ofConfined()) {
            SafeTensorsFile file = SafeTensorsFile.open(weightsFile, arena);
            List<LoraModule> modules = modules(dir, config, file);
            return new LoraWeights(real, fingerprint(configBytes, weightsFile, arena), base.numLayers(), modules);
        } catch (ModelLoadException e) {
            throw new AdapterLoadException(dir, e.getMessage(), e);
        }
    }

    /**
     * The adapter directory's real path, which must lie under an allowed root: the path as given is
     * checked before the file system is touched, then links are resolved and checked again, so neither
     * {@code ..} nor a symlink can lead outside, and a path outside learns nothing (see {@link AdapterPathPolicy}).
     */
    public Path resolve(Path dir) {
        allowed.checkGiven(dir);
        Path real;
        try {
            real = dir.toRealPath();
        } catch (IOException e) {
            throw new AdapterLoadException(dir, "the directory does not exist or cannot be read");
        }
        allowed.checkResolved(dir, real);
        if (!Files.isDirectory(real)) {
            throw new AdapterLoadException(dir, "not a directory");
        }
        return real;
    }

    private Path file(Path dir, Path real, String name) {
        Path f = real.resolve(name);
        if (!Files.isRegularFile(f)) {
            throw new AdapterLoadException(dir, "missing " + name);
        }
        try {
            allowed.checkResolved(dir, f.toRealPath()); // NOTE: the file itself may be a link leading elsewhere
        } catch (IOException e) {
            throw new AdapterLoadException(dir, "cannot resolve " + name + ": " + e.getMessage(), e);
        }
        return f;
    }

    private Path weightsFile(Path dir, Path real) {
        if (!Files.exists(real.resolve(WEIGHTS)) && Files.exists(real.resolve("adapter_model.bin"))) {
            throw new AdapterLoadException(dir, "has adapter_model.bin (a pickle); only " + WEIGHTS + " is supported");
        }
        return file(dir, real, WEIGHTS);
    }

    /** One A/B pair per targeted projection, nothing else: a stray tensor is an error, never ignored. */
    private List<LoraModule> modules(Path dir, LoraConfig config, SafeTensorsFile file) {
        Map<String, Tensor[]> pairs = new TreeMap<>(); // module name -> {A, B}
        for (String name : file.names()) {
            Matcher m = TENSOR.matcher(name);
            if (!m.matches()) {
                throw new AdapterLoadException(dir, "unexpected tensor '" + name + "': only lora_A/lora_B weights of "
                        + LoraTarget.supported() + " are supported");
            }
            int layer = Integer.parseInt(m.group(1));
            LoraTarget target = LoraTarget.ofPath(m.group(2)).orElseThrow(() -> new AdapterLoadException(dir,
                    "tensor '" + name + "' adapts module '" + m.group(2) + "', not one of " + LoraTarget.supported()));
            if (layer >= base.numLayers()) {
                throw new AdapterLoadException(dir, "tensor '" + name + "' is for layer " + layer
                        + " but the base model has " + base.numLayers() + " layers");
            }
            pairs.computeIfAbsent(target.moduleName(layer), k -> new Tensor[2])[m.group(3).equals("A") ? 0 : 1] =
                    file.find(name).orElseThrow();
        }
        requireTargetsExist(dir, config);
        List<LoraModule> modules = new ArrayList<>();
        for (int layer = 0; layer < base.numLayers(); layer++) {
            for (LoraTarget target : LoraTarget.values()) {
                String module = target.moduleName(layer);
                Tensor[] pair = pairs.remove(module);
                boolean targeted = config.targets(module, layer);
                if (targeted && (pair == null || pair[0] == null || pair[1] == null)) {
                    throw new AdapterLoadException(dir, "adapter_config.json targets " + module
                            + " but " + WEIGHTS + " lacks its lora_A/lora_B weights");
                }
                if (!targeted && pair != null) {
                    throw new AdapterLoadException(dir, WEIGHTS + " has weights for " + module
                            + ", which adapter_config.json does not target");
                }
                if (targeted) {
                    modules.add(module(dir, config, layer, target, pair[0], pair[1]));
                }
            }
        }
        if (modules.isEmpty()) {
            throw new AdapterLoadException(dir, "adapts no module of the base model");
        }
        return modules;
    }

    /** Every name {@code target_modules} lists must match some projection: a typo would silently adapt less. */
    private void requireTargetsExist(Path dir, LoraConfig config) {
        for (String entry : config.targets().entries()) {
            ModuleSelector one = config.targets() instanceof ModuleSelector.Regex r ? r : new ModuleSelector.Names(List.of(entry));
            boolean found = false;
            for (int layer = 0; layer < base.numLayers() && !found; layer++) {
                for (LoraTarget t : LoraTarget.values()) {
                    found |= one.matches(t.moduleName(layer));
                }
            }
            if (!found) {
                throw new AdapterLoadException(dir, "target module '" + entry + "' matches none of the base model's "
                        + "adaptable projections (" + LoraTarget.supported() + ")");
            }
        }
    }

    private LoraModule module(Path dir, LoraConfig config, int layer, LoraTarget target, Tensor a, Tensor b) {
        String module = target.moduleName(layer);
        int in = target.inDim(base), out = target.outDim(base);
        int rank = config.rankOf(module);
        if (rank > maxRank) {
            throw new AdapterLoadException(dir, "rank " + rank + " of " + module + " exceeds the maximum LoRA rank "
                    + maxRank + " (--max-lora-rank)");
        }
        requireShape(dir, a, rank, in);
        requireShape(dir, b, out, rank);
        float[] aData = widen(a);                 // [rank, in]
        float[] bData = widen(b);                 // [out, rank]
        float[] bT = new float[rank * out];       // [rank, out]
        for (int o = 0; o < out; o++) {
            for (int k = 0; k < rank; k++) {
                bT[k * out + o] = bData[o * rank + k];
            }
        }
        return new LoraModule(layer, target, rank, in, out, config.scaleOf(module), aData, bT);
    }

    private static void requireShape(Path dir, Tensor t, long rows, long cols) {
        if (!Arrays.equals(t.shape(), new long[] {rows, cols})) {
            throw new AdapterLoadException(dir, "tensor '" + t.name() + "' has shape " + Arrays.toString(t.shape())
                    + " but the base model and rank imply [" + rows + ", " + cols + "]");
        }
    }

    private static float[] widen(Tensor t) {
        float[] out = new float[Math.toIntExact(t.numel())];
        MemorySegment d = t.data();
        DType dtype = t.dtype();
        for (int i = 0; i < out.length; i++) {
            out[i] = switch (dtype) {
                case F32 -> d.getAtIndex(FLOAT, i);
                case BF16 -> Float.intBitsToFloat(d.getAtIndex(SHORT, i) << 16);
                case F16 -> Float.float16ToFloat(d.getAtIndex(SHORT, i));
            };
        }
        return out;
    }

    /** Identifies the adapter's content: the same files give the same id on every node. */
    private static String fingerprint(byte[] config, Path weights, Arena arena) {
        try (var channel = java.nio.channels.FileChannel.open(weights)) {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update(config);
            MemorySegment all = channel.map(java.nio.channels.FileChannel.MapMode.READ_ONLY, 0, channel.size(), arena);
            for (long off = 0; off < all.byteSize(); off += 1 << 30) {
                sha.update(all.asSlice(off, Math.min(1L << 30, all.byteSize() - off)).asByteBuffer());
            }
            return HexFormat.of().formatHex(sha.digest());
        } catch (IOException e) {
            throw new ModelLoadException("cannot read " + weights + ": " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
