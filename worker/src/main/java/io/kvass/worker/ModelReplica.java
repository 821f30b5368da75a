package io.kvass.worker;

import io.kvass.worker.backend.Backend;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.model.ModelLoadException;
import io.kvass.worker.tokenizer.ChatTemplate;
import io.kvass.worker.tokenizer.Tokenizer;
import java.util.Optional;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** A model opened for serving on this node: weights, tokenizer, chat template and the backend that runs it. */
public record ModelReplica(LoadedModel model, Tokenizer tokenizer, Optional<ChatTemplate> chatTemplate, Backend backend,
                           int maxModelLen) implements AutoCloseable {
    private static final Logger LOG = LoggerFactory.getLogger(ModelReplica.class);

    public static ModelReplica load(ReplicaOptions options) {
        return load(options, LoraCapacity.NONE);
    }

    /** With {@code lora.maxLoras()} LoRA adapter slots on the backend (see {@code io.kvass.worker.lora.AdapterManager}). */
    public static ModelReplica load(ReplicaOptions options, LoraCapacity lora) {
        long start = System.nanoTime();
        LOG.info("loading model from {}", options.modelDir());
        String randomSeed = System.getProperty(RANDOM_WEIGHTS);
        boolean random = randomSeed != null && options.device() == ReplicaOptions.Device.CUDA;
        LoadedModel model = random ? configOnly(options) : LoadedModel.load(options.modelDir());
        try {
            Tokenizer tokenizer = Tokenizer.load(options.modelDir());
            Optional<ChatTemplate> template = ChatTemplate.load(options.modelDir());
            int maxModelLen = ModelCard.maxModelLen(options, model.config());
            Backend backend = switch (options.device()) {
                case CPU -> cpuBackend(model, options, maxModelLen, lora);
                case CUDA -> random
                        ? io.kvass.worker.cuda.CudaBackend.random(model.config(),
                                io.kvass.worker.cuda.CudaOptions.of(options, maxModelLen, lora), seed(randomSeed))
                        : io.kvass.worker.cuda.CudaBackend.open(model, io.kvass.worker.cuda.CudaOptions.of(options, maxModelLen, lora));
            };
            LOG.info("model {} loaded in {} ms: {} layers, hidden {}, vocab {}, {} KV blocks of {} tokens, max_model_len {}",
                    options.modelDir().getFileName(), (System.nanoTime() - start) / 1_000_000, model.config().numLayers(),
                    model.config().hiddenSize(), model.config().vocabSize(), backend.numKvBlocks(), backend.blockSize(),
                    maxModelLen);
            return new ModelReplica(model, tokenizer, template, backend, maxModelLen);
        } catch (RuntimeException e) {
            model.close();
            throw e;
        }
    }

    /**
     * Benchmarks only: {@code -Dkvass.cuda.randomWeights=SEED} with {@code --device cuda} reads just
     * {@code config.json} (and the tokenizer) from the model directory and serves random weights of
     * its shapes, generated on the GPU (speed does not depend on the values; no weight files needed).
     */
    public static final String RANDOM_WEIGHTS = "kvass.cuda.randomWeights";

    private static long seed(String value) {
        try {
            return value.isBlank() || value.equalsIgnoreCase("true") ? 0L : Long.parseLong(value.trim());
        } catch (NumberFormatException e) {
            throw new ModelLoadException("-D" + RANDOM_WEIGHTS + " expects a seed (a long), got '" + value + "'");
        }
    }

    private static LoadedModel configOnly(ReplicaOptions options) {
        java.nio.file.Path dir = options.modelDir();
        LOG.warn("-D{}: serving RANDOM weights in the shape of {}/config.json (benchmarks only)", RANDOM_WEIGHTS, dir);
        io.kvass.worker.model.ModelConfig config = io.kvass.worker.model.ModelConfig.load(dir);
        io.kvass.worker.model.WeightSource none = new io.kvass.worker.model.WeightSource() {
            @Override
            public Optional<io.kvass.worker.model.Tensor> find(String name) {
                return Optional.empty();
            }

            @Override
            public String describe() {
                return "random weights (-D" + RANDOM_WEIGHTS + ")";
            }

            @Override
            public void close() {
            }
        };
        return new LoadedModel(dir, config, null, none);
    }

    /** As many blocks as the memory holds, but no more than max_num_seqs full-length sequences could use. */
    private static Backend cpuBackend(LoadedModel model, ReplicaOptions options, int maxModelLen, LoraCapacity lora) {
        int fits = CpuBackend.blocksFor(model.config(), options.kvCacheBytes(), options.blockSize());
        long useful = (long) options.maxNumSeqs() * ((maxModelLen + options.blockSize() - 1) / options.blockSize());
        int blocks = (int) Math.min(fits, useful);
        if (blocks < 1) {
            throw new ModelLoadException("KV cache memory of " + options.kvCacheBytes() + " bytes holds no block of "
                    + options.blockSize() + " tokens for this model");
        }
        return new CpuBackend(model, blocks, options.blockSize(), options.threads(), lora, options.cpuWeights(),
                options.cpuWeightFormat());
    }

    @Override
    public void close() {
        backend.close();
        tokenizer.close();
        model.close();
    }
}
