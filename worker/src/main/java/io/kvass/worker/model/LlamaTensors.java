package io.kvass.worker.model;

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The tensors of a Llama-family decoder under Hugging Face names, shape-checked against the config.
 * Backends turn these into their own weight representation.
 */
public record LlamaTensors(Tensor embedding, List<Layer> layers, Tensor finalNorm, Tensor lmHead) {

    /** One decoder layer; the q/k/v biases are present only for Qwen2-style models. */
    public record Layer(Tensor attnNorm, Tensor q, Tensor k, Tensor v, Tensor o,
                        Optional<Tensor> qBias, Optional<Tensor> kBias, Optional<Tensor> vBias,
                        Tensor ffnNorm, Tensor gate, Tensor up, Tensor down) {
    }

    public static LlamaTensors from(WeightSource src, ModelConfig c) {
        long h = c.hiddenSize();
        Tensor embedding = src.get("model.embed_tokens.weight").requireShape(c.vocabSize(), h);
        List<Layer> layers = new ArrayList<>(c.numLayers());
        for (int i = 0; i < c.numLayers(); i++) {
            String p = "model.layers." + i + ".";
            layers.add(new Layer(
                    src.get(p + "input_layernorm.weight").requireShape(h),
                    src.get(p + "self_attn.q_proj.weight").requireShape(c.qDim(), h),
                    src.get(p + "self_attn.k_proj.weight").requireShape(c.kvDim(), h),
                    src.get(p + "self_attn.v_proj.weight").requireShape(c.kvDim(), h),
                    src.get(p + "self_attn.o_proj.weight").requireShape(h, c.qDim()),
                    bias(src, c, p + "self_attn.q_proj.bias", c.qDim()),
                    bias(src, c, p + "self_attn.k_proj.bias", c.kvDim()),
                    bias(src, c, p + "self_attn.v_proj.bias", c.kvDim()),
                    src.get(p + "post_attention_layernorm.weight").requireShape(h),
                    src.get(p + "mlp.gate_proj.weight").requireShape(c.intermediateSize(), h),
                    src.get(p + "mlp.up_proj.weight").requireShape(c.intermediateSize(), h),
                    src.get(p + "mlp.down_proj.weight").requireShape(h, c.intermediateSize())));
        }
        Tensor finalNorm = src.get("model.norm.weight").requireShape(h);
        Tensor lmHead = c.tiedEmbeddings()
                ? src.find("lm_head.weight").orElse(embedding)
                : src.get("lm_head.weight").requireShape(c.vocabSize(), h);
        return new LlamaTensors(embedding, List.copyOf(layers), finalNorm, lmHead);
    }

    private static Optional<Tensor> bias(WeightSource src, ModelConfig c, String name, long size) {
        return c.qkvBias() ? Optional.of(src.get(name).requireShape(size)) : Optional.empty();
    }
}
