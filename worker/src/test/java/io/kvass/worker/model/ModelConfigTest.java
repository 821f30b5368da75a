package io.kvass.worker.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;

class ModelConfigTest {
    private static ModelConfig parse(String json) throws Exception {
        return ModelConfig.parse(new ObjectMapper().readTree(json), "test config");
    }

    private static final String LLAMA31 = """
            {"architectures":["LlamaForCausalLM"],"hidden_size":4096,"intermediate_size":14336,
             "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"vocab_size":128256,
             "max_position_embeddings":131072,"rms_norm_eps":1e-5,"rope_theta":500000.0,
             "rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
               "original_max_position_embeddings":8192,"rope_type":"llama3"},"eos_token_id":[128001,128008,128009]}
            """;

    @Test
    void llama31StyleWithLlama3RopeScaling() throws Exception {
        ModelConfig c = parse(LLAMA31);
        assertEquals(128, c.headDim());
        assertEquals(1024, c.kvDim());
        assertEquals("llama3", c.rope().type());
        assertEquals(java.util.Set.of(128001, 128008, 128009), c.eosTokenIds());
        float[] inv = c.rope().inverseFrequencies(c.headDim());
        // transformers' _compute_llama3_parameters on these settings (high frequencies kept, low ones / 8)
        assertEquals(1.0f, inv[0]);
        double base = 1.0 / Math.pow(500000.0, 126.0 / 128);
        assertEquals(base / 8, inv[63], Math.ulp((float) (base / 8)) * 4);
        assertTrue(inv[40] < 1.0 / Math.pow(500000.0, 80.0 / 128) && inv[40] > base);
    }

    @Test
    void mistralSlidingWindowCapsContext() throws Exception {
        ModelConfig c = parse("""
                {"architectures":["MistralForCausalLM"],"hidden_size":64,"intermediate_size":128,"num_hidden_layers":1,
                 "num_attention_heads":4,"num_key_value_heads":1,"vocab_size":100,"max_position_embeddings":32768,
                 "sliding_window":4096}""");
        assertEquals(4096, c.maxPositions());
        assertEquals(1, c.numKvHeads()); // MQA
    }

    @Test
    void unsupportedRopeTypeIsNamed() {
        var e = assertThrows(ModelLoadException.class, () -> parse(LLAMA31.replace("\"llama3\"", "\"yarn\"")));
        assertTrue(e.getMessage().contains("unsupported rope type 'yarn'"), e.getMessage());
    }

    @Test
    void missingFieldIsNamed() {
        var e = assertThrows(ModelLoadException.class, () -> parse("{\"architectures\":[\"LlamaForCausalLM\"]}"));
        assertTrue(e.getMessage().contains("hidden_size"), e.getMessage());
    }
}
