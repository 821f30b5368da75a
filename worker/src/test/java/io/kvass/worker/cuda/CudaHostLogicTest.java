package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.model.Architecture;
import io.kvass.worker.model.ModelConfig;
import io.kvass.worker.model.RopeScaling;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.OptionalInt;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The CUDA backend's host-side logic, which needs no GPU: input packing, attention plans, batch splitting. */
class CudaHostLogicTest {
    static final ModelConfig TINY = new ModelConfig(Architecture.LLAMA, 64, 128, 2, 4, 2, 16, 100, 1e-5f,
            RopeScaling.plain(10000), 256, false, false, OptionalInt.empty(), Set.of());

    private static StepInputs inputs(int capacity, int maxBlocks) {
        return new StepInputs(capacity, maxBlocks,
                ByteBuffer.allocateDirect((int) StepInputs.bytes(capacity, maxBlocks)).order(ByteOrder.LITTLE_ENDIAN));
    }

    @Test
    void packsTokensPositionsSlotsAndLogitRows() {
        StepInputs in = inputs(16, 8);
        in.fill(List.of(
                new SequenceForward(new int[] {5, 6, 7}, 2, new int[] {3, 1}, LogitsMode.ALL),
                new SequenceForward(new int[] {9}, 17, new int[] {0, 4, 2, 6}, LogitsMode.LAST),
                new SequenceForward(new int[] {1, 2}, 0, new int[] {7}, LogitsMode.NONE)), TINY, 16, 8, 256, false);
        assertEquals(6, in.numTokens);
        assertEquals(3, in.numSequences);
        assertEquals(4, in.numLogitRows);
        assertEquals(18, in.maxContext);
        int[] slots = new int[6];
        for (int t = 0; t < 6; t++) {
            slots[t] = in.get(StepInputs.SLOTS, t);
        }
        // positions 2,3,4 in block 3; position 17 in block table[1] = 4; positions 0,1 in block 7
        assertArrayEquals(new int[] {50, 51, 52, 4 * 16 + 1, 112, 113}, slots);
        assertEquals(1, in.get(StepInputs.TOKEN_SEQUENCE, 3));
        assertEquals(17, in.get(StepInputs.POSITIONS, 3));
        assertArrayEquals(new int[] {0, 1, 2, 3}, new int[] {in.get(StepInputs.LOGIT_ROWS, 0),
                in.get(StepInputs.LOGIT_ROWS, 1), in.get(StepInputs.LOGIT_ROWS, 2), in.get(StepInputs.LOGIT_ROWS, 3)});
        assertEquals(4, in.table(1, 1));
        assertEquals(in.tablesOffset() + 4L * 3 * 8, in.uploadBytes());
    }

    @Test
    void longChunksBecomePrefillTilesAndTheRestGoesToThePagedKernel() {
        StepInputs in = inputs(256, 16);
        in.fill(List.of(
                new SequenceForward(new int[130], 0, new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8}, LogitsMode.LAST),
                new SequenceForward(new int[] {1}, 3, new int[] {9}, LogitsMode.LAST),
                new SequenceForward(new int[15], 0, new int[] {10}, LogitsMode.LAST),
                new SequenceForward(new int[16], 20, new int[] {11, 12, 13}, LogitsMode.LAST)), TINY, 16, 16, 256, true);
        assertEquals(4, in.numTiles);
        int[][] tiles = new int[4][];
        for (int i = 0; i < 4; i++) {
            tiles[i] = new int[] {in.get(StepInputs.TILES, 2 * i), in.get(StepInputs.TILES, 2 * i + 1)};
        }
        assertArrayEquals(new int[] {0, 64}, tiles[0]);
        assertArrayEquals(new int[] {64, 64}, tiles[1]);
        assertArrayEquals(new int[] {128, 2}, tiles[2]);
        assertArrayEquals(new int[] {146, 16}, tiles[3]);
        assertEquals(16, in.numPagedTokens);
        assertEquals(130, in.get(StepInputs.PAGED_TOKENS, 0));
        assertEquals(145, in.get(StepInputs.PAGED_TOKENS, 15));
    }

    @Test
    void eachTokenCarriesItsSequencesAdapterSlotAndPaddingTheBaseModel() {
        StepInputs in = inputs(8, 4);
        in.fill(List.of(
                new SequenceForward(new int[] {3, 4}, 0, new int[] {2}, LogitsMode.LAST, 2),
                new SequenceForward(new int[] {5}, 9, new int[] {1}, LogitsMode.LAST, 0),
                new SequenceForward(new int[] {6}, 4, new int[] {3}, LogitsMode.LAST, 1)), TINY, 16, 4, 64, false);
        in.padTo(6);
        int[] slots = new int[6];
        for (int t = 0; t < 6; t++) {
            slots[t] = in.get(StepInputs.ADAPTER_SLOTS, t);
        }
        assertArrayEquals(new int[] {2, 2, 0, 1, 0, 0}, slots);
        assertEquals(3, in.numAdaptedTokens);
        // LoRA tiles: slot 1's token 3, then slot 2's tokens 0 and 1; no tile past them, padding included.
        assertEquals(2, in.numLoraTiles);
        assertArrayEquals(new int[] {3, 0, 1}, sections(in, StepInputs.LORA_ORDER, 3));
        assertArrayEquals(new int[] {0, 1}, sections(in, StepInputs.LORA_TILE_START, 2));
        assertArrayEquals(new int[] {1, 2, 0, 0, 0, 0}, sections(in, StepInputs.LORA_TILE_COUNT, 6));
        in.fill(List.of(new SequenceForward(new int[] {3}, 0, new int[] {2}, LogitsMode.LAST)), TINY, 16, 4, 64, false);
        assertEquals(0, in.numAdaptedTokens);
        assertEquals(0, in.numLoraTiles);
    }

    @Test
    void loraTilesHoldAtMostEightTokensOfOneSlot() {
        StepInputs in = inputs(32, 4);
        in.fill(List.of(
                new SequenceForward(new int[10], 0, new int[] {0}, LogitsMode.LAST, 1),
                new SequenceForward(new int[3], 0, new int[] {1}, LogitsMode.LAST, 2),
                new SequenceForward(new int[2], 0, new int[] {2}, LogitsMode.LAST, 1)), TINY, 16, 4, 64, false);
        assertEquals(15, in.numAdaptedTokens);
        assertEquals(3, in.numLoraTiles);
        // slot 1: tokens 0..9 then 13, 14 (12 tokens: 8 + 4); slot 2: tokens 10..12
        assertArrayEquals(new int[] {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 14, 10, 11, 12},
                sections(in, StepInputs.LORA_ORDER, 15));
        assertArrayEquals(new int[] {0, 8, 12}, sections(in, StepInputs.LORA_TILE_START, 3));
        assertArrayEquals(new int[] {8, 4, 3, 0}, sections(in, StepInputs.LORA_TILE_COUNT, 4));
    }

    @Test
    void longAdaptedSequencesBecomeGemmRunsAndLeaveTheTiles() {
        StepInputs in = inputs(128, 8);
        in.fill(List.of(
                new SequenceForward(new int[3], 0, new int[] {0}, LogitsMode.LAST, 1),
                new SequenceForward(new int[StepInputs.LORA_GEMM_MIN_TOKENS], 0, new int[] {1, 2, 3, 4}, LogitsMode.LAST, 2),
                new SequenceForward(new int[2], 0, new int[] {5}, LogitsMode.LAST, 0)), TINY, 16, 8, 64, false);
        assertEquals(3 + StepInputs.LORA_GEMM_MIN_TOKENS, in.numAdaptedTokens);
        assertEquals(List.of(new StepInputs.LoraRun(3, StepInputs.LORA_GEMM_MIN_TOKENS, 2)), in.loraRuns);
        assertEquals(1, in.numLoraTiles);
        assertArrayEquals(new int[] {0, 1, 2}, sections(in, StepInputs.LORA_ORDER, 3));
        assertArrayEquals(new int[] {3, 0}, sections(in, StepInputs.LORA_TILE_COUNT, 2));
    }

    private static int[] sections(StepInputs in, int section, int count) {
        int[] values = new int[count];
        for (int i = 0; i < count; i++) {
            values[i] = in.get(section, i);
        }
        return values;
    }

    @Test
    void paddingTokensWriteNothingAndReadTheSpareTableRow() {
        StepInputs in = inputs(8, 4);
        in.fill(List.of(new SequenceForward(new int[] {3}, 5, new int[] {2}, LogitsMode.LAST)), TINY, 16, 4, 64, false);
        in.padTo(4);
        assertEquals(4, in.paddedTokens);
        for (int t = 1; t < 4; t++) {
            assertEquals(-1, in.get(StepInputs.SLOTS, t));
            assertEquals(1, in.get(StepInputs.TOKEN_SEQUENCE, t));
            assertEquals(0, in.get(StepInputs.POSITIONS, t));
        }
        assertEquals(0, in.table(1, 0));
        assertEquals(in.tablesOffset() + 4L * 2 * 4, in.uploadBytes());
    }

    @Test
    void rejectsBadInputsWithReasons() {
        StepInputs in = inputs(8, 4);
        assertTrue(assertThrows(IllegalArgumentException.class, () -> in.fill(List.of(
                new SequenceForward(new int[] {100}, 0, new int[] {0}, LogitsMode.LAST)), TINY, 16, 4, 64, false))
                .getMessage().contains("vocabulary"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> in.fill(List.of(
                new SequenceForward(new int[] {1}, 16, new int[] {0}, LogitsMode.LAST)), TINY, 16, 4, 64, false))
                .getMessage().contains("block table"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> in.fill(List.of(
                new SequenceForward(new int[] {1}, 0, new int[] {9}, LogitsMode.LAST)), TINY, 16, 4, 64, false))
                .getMessage().contains("outside the pool"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> in.fill(List.of(
                new SequenceForward(new int[] {1}, 64, new int[] {0, 1, 2, 3, 0}, LogitsMode.LAST)), TINY, 16, 4, 64, false))
                .getMessage().contains("max_model_len"));
    }

    @Test
    void attentionPlansFillTheGpuAndStayWithinThePartialBuffer() {
        int sms = 132;
        AttentionPlan one = AttentionPlan.of(1, 1025, 8, sms);
        assertEquals(1280, one.contextBucket());
        assertTrue(one.parts() > 1 && one.parts() * one.partSize() >= 1025 && one.partSize() % 64 == 0, one.toString());
        assertEquals(1024, AttentionPlan.contextBucket(1024));
        assertEquals(128, AttentionPlan.contextBucket(65));
        assertEquals(2048, AttentionPlan.contextBucket(2048));
        assertEquals(2560, AttentionPlan.contextBucket(2049));
        assertEquals(1, AttentionPlan.of(256, 1025, 8, sms).parts());
        assertEquals(1, AttentionPlan.of(2048, 2048, 8, sms).parts());
        assertEquals(64, AttentionPlan.of(4, 1, 2, sms).contextBucket());
        for (int tokens = 1; tokens <= 300; tokens++) {
            for (int kv : new int[] {1, 2, 8}) {
                for (int ctx : new int[] {1, 63, 64, 65, 1000, 8192, 131072}) {
                    AttentionPlan p = AttentionPlan.of(tokens, ctx, kv, sms);
                    assertTrue(p.parts() * p.partSize() >= ctx && p.contextBucket() >= ctx);
                    if (p.parts() > 1) {
                        assertTrue((long) tokens * kv * 8 * p.parts() <= AttentionPlan.maxPartialRows(8, kv, sms), p.toString());
                    }
                }
            }
        }
    }

    @Test
    void graphBucketsArePowersOfTwo() {
        assertEquals(1, CudaBackend.bucketFor(1));
        assertEquals(2, CudaBackend.bucketFor(2));
        assertEquals(4, CudaBackend.bucketFor(3));
        assertEquals(128, CudaBackend.bucketFor(100));
        assertEquals(256, CudaBackend.bucketFor(256));
    }

    @Test
    void splitBatchesKeepRowsInOrderAsChunkedPrefill() {
        List<SequenceForward> batch = List.of(
                new SequenceForward(new int[] {1, 2, 3, 4, 5}, 0, new int[] {0}, LogitsMode.ALL),
                new SequenceForward(new int[] {6, 7, 8, 9}, 3, new int[] {1}, LogitsMode.LAST),
                new SequenceForward(new int[] {10}, 7, new int[] {2}, LogitsMode.NONE));
        List<List<SequenceForward>> steps = new ArrayList<>();
        // A fake step: one logits row per token whose mode asks, holding {startPosition + i}.
        List<float[][]> out = BatchSplitter.forward(batch, 3, step -> {
            steps.add(step);
            List<float[][]> r = new ArrayList<>();
            for (SequenceForward s : step) {
                assertTrue(s.numTokens() <= 3);
                int n = s.logits() == LogitsMode.ALL ? s.numTokens() : s.logits() == LogitsMode.LAST ? 1 : 0;
                float[][] rows = new float[n][];
                for (int i = 0; i < n; i++) {
                    int pos = s.logits() == LogitsMode.ALL ? s.startPosition() + i : s.endPosition() - 1;
                    rows[i] = new float[] {pos};
                }
                r.add(rows);
            }
            return r;
        });
        assertEquals(4, steps.size());
        assertEquals(5, out.get(0).length);
        for (int i = 0; i < 5; i++) {
            assertEquals(i, out.get(0)[i][0]);
        }
        assertEquals(1, out.get(1).length);
        assertEquals(6, out.get(1)[0][0]);
        assertEquals(0, out.get(2).length);
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals(1f, Bf16.round(1f));
        assertEquals(1f, Bf16.round(1f + 0x1p-9f));                    // below half an ulp (2^-7 at 1)
        assertEquals(1f, Bf16.round(1f + 0x1p-8f));                    // a tie: to the even 1.0
        assertEquals(1f + 0x1p-6f, Bf16.round(1f + 0x1p-7f + 0x1p-8f)); // a tie: to even, upwards
        assertEquals(-2.5f, Bf16.round(-2.5f));
        assertTrue(Float.isNaN(Bf16.round(Float.NaN)));
    }

    @Test
    void withoutAGpuOpeningSaysWhy() {
        org.junit.jupiter.api.Assumptions.assumeTrue(CudaBackend.unavailableReason().isPresent(), "a GPU is present");
        var e = assertThrows(RuntimeException.class, () -> CudaBackend.random(TINY, CudaOptions.defaults(256), 1));
        assertTrue(e.getMessage().contains("cuda"), e.getMessage());
    }
}
