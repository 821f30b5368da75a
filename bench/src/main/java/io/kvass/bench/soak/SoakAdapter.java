package io.kvass.bench.soak;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * A random rank-4 PEFT LoRA adapter (q_proj and v_proj of every layer, f32) for a Llama model, written
 * as PEFT writes one: the fixtures' adapters are made for another model, and the soak needs one that
 * stories260K serves. Its weights are small so that the text stays close to the base model's.
 */
final class SoakAdapter {
    private SoakAdapter() {
    }

    /** @param kvDim num_key_value_heads x head_dim (v_proj's output) */
    static Path write(Path dir, int layers, int hidden, int kvDim, long seed) throws IOException {
        Files.createDirectories(dir);
        Files.writeString(dir.resolve("adapter_config.json"), """
                {"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"],
                 "bias": "none", "use_rslora": false, "use_dora": false, "modules_to_save": null,
                 "fan_in_fan_out": false, "layers_to_transform": null, "task_type": "CAUSAL_LM",
                 "base_model_name_or_path": null, "inference_mode": true}
                """);
        Random random = new Random(seed);
        List<String> names = new ArrayList<>();
        List<long[]> shapes = new ArrayList<>();
        for (int l = 0; l < layers; l++) {
            for (String proj : List.of("q_proj", "v_proj")) {
                int out = proj.equals("q_proj") ? hidden : kvDim;
                String prefix = "base_model.model.model.layers." + l + ".self_attn." + proj;
                names.add(prefix + ".lora_A.weight");
                shapes.add(new long[] {4, hidden});
                names.add(prefix + ".lora_B.weight");
                shapes.add(new long[] {out, 4});
            }
        }
        StringBuilder header = new StringBuilder("{");
        long offset = 0;
        for (int i = 0; i < names.size(); i++) {
            long bytes = shapes.get(i)[0] * shapes.get(i)[1] * 4;
            header.append(i == 0 ? "" : ",").append('"').append(names.get(i)).append("\":{\"dtype\":\"F32\",\"shape\":[")
                    .append(shapes.get(i)[0]).append(',').append(shapes.get(i)[1]).append("],\"data_offsets\":[")
                    .append(offset).append(',').append(offset + bytes).append("]}");
            offset += bytes;
        }
        header.append('}');
        while ((header.length() + 8) % 8 != 0) {
            header.append(' ');
        }
        byte[] head = header.toString().getBytes(StandardCharsets.UTF_8);
        ByteBuffer file = ByteBuffer.allocate((int) (8 + head.length + offset)).order(ByteOrder.LITTLE_ENDIAN);
        file.putLong(head.length).put(head);
        while (file.hasRemaining()) {
            file.putFloat((float) (random.nextGaussian() * 0.02));
        }
        Files.write(dir.resolve("adapter_model.safetensors"), file.array());
        return dir;
    }
}
