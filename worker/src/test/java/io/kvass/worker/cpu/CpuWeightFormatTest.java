package io.kvass.worker.cpu;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.model.LoadedModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A model decodes the same with packed and bf16 weights, and the packed one streams 3/4 of the bytes. */
class CpuWeightFormatTest {

    @Test
    void packedWeightsGiveTheLogitsOfBf16(@TempDir Path dir) throws IOException {
        assumeTrue(PackedBf16Matrix.SUPPORTED, "the packed kernel needs 512-bit vectors");
        CpuWeightMemoryTest.writeTiedBf16Llama(dir);
        try (LoadedModel model = LoadedModel.load(dir);
             CpuBackend bf16 = new CpuBackend(model, 4, 16, 2, LoraCapacity.NONE, CpuWeightMemory.MMAP,
                     CpuWeightFormat.BF16);
             CpuBackend packed = new CpuBackend(model, 4, 16, 2, LoraCapacity.NONE, CpuWeightMemory.HUGEPAGES,
                     CpuWeightFormat.PACKED)) {
            assertEquals(bf16.decodeBytes() * 3 / 4, packed.decodeBytes());
            assertEquals(packed.decodeBytes(),
                    packed.decodeSegments().stream().mapToLong(java.lang.foreign.MemorySegment::byteSize).sum(),
                    "the floor streams what the kernels stream");
            List<float[]> a = CpuWeightMemoryTest.logits(bf16), b = CpuWeightMemoryTest.logits(packed);
            for (int i = 0; i < a.size(); i++) {
                // NOTE: the same weights, but escapes are added after the lanes' sum: equal to rounding (~2e-6 here).
                assertArrayEquals(a.get(i), b.get(i), 1e-5f, "step " + i);
            }
        }
    }
}
