package io.kvass.worker.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.kvass.worker.backend.LogitsMode;
import io.kvass.worker.backend.SequenceForward;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.lora.LoraCapacity;
import io.kvass.worker.lora.LoraLoader;
import io.kvass.worker.lora.LoraWeights;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.GreedyRunner;
import io.kvass.worker.testing.ReferenceCase;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * LoRA on the CUDA backend (lora.cu) against PEFT's fp32 references, alone and in batches that mix
 * the base model and both adapters in every step, prefill and graph-captured decode alike.
 *
 * <p>The model runs {@link Fixtures#asPeftLoadedIt as PEFT loaded it} (unrounded RoPE frequencies;
 * see CpuLoraReferenceTest). Tolerances are the bf16 ones of {@link CudaBackendReferenceTest}: the
 * adapters' A and B are bf16 on the GPU as the base weights are.
 */
@Tag("gpu")
class CudaLoraReferenceTest {
    private static final List<String> TAGS = List.of("base", "adapter-a", "adapter-b");

    @BeforeAll
    static void gpu() {
        Gpu.assumePresent();
    }

    static CudaBackend open(LoadedModel model, int blocks, LoraCapacity lora) {
        return CudaBackend.open(model, CudaOptions.defaults(model.config().maxPositions()).withKvBlocks(blocks)
                .withMaxTokensPerStep(256).withLora(lora));
    }

    static LoraWeights adapter(LoadedModel model, String variant, String tag) {
        return new LoraLoader(model.config(), 16, List.of(Fixtures.root())).load(Fixtures.reference(variant).resolve(tag));
    }

    @ParameterizedTest
    @CsvSource({"llama-gqa, adapter-a", "llama-gqa, adapter-b", "qwen2-bias, adapter-a", "qwen2-bias, adapter-b"})
    void eachPromptAloneMatchesPeft(String variant, String tag) {
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CudaBackend backend = open(Fixtures.asPeftLoadedIt(model), 64, new LoraCapacity(3, 16))) {
            backend.loadAdapter(3, adapter(model, variant, tag)); // any slot: 3 is the last one
            for (ReferenceCase.Prompt p : ReferenceCase.load(variant, tag)) {
                GreedyRunner.Result r = GreedyRunner.run(backend, List.of(p.ids()), new int[] {3}, p.greedy().length)
                        .getFirst();
                CudaBackendReferenceTest.assertMatches(variant, "alone " + tag, p, r);
            }
        }
    }

    /**
     * 12 sequences in every step, each prompt under the base model, adapter-a and adapter-b: adapter
     * rows match PEFT, and every row matches the fp32 CPU backend running the same mix.
     */
    @ParameterizedTest
    @ValueSource(strings = {"llama-gqa", "qwen2-bias"})
    void mixedBatchMatchesPeftAndTheCpuBackend(String variant) {
        List<List<ReferenceCase.Prompt>> byTag = TAGS.stream().map(t -> ReferenceCase.load(variant, t)).toList();
        List<int[]> prompts = new ArrayList<>();
        List<ReferenceCase.Prompt> expected = new ArrayList<>();
        List<Integer> slotList = new ArrayList<>();
        for (int i = 0; i < byTag.getFirst().size(); i++) {
            for (int tag = 0; tag < TAGS.size(); tag++) {
                prompts.add(byTag.get(tag).get(i).ids());
                expected.add(byTag.get(tag).get(i));
                slotList.add(tag);
            }
        }
        int[] slots = slotList.stream().mapToInt(Integer::intValue).toArray();
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CudaBackend gpu = open(Fixtures.asPeftLoadedIt(model), 128, new LoraCapacity(2, 8));
             CpuBackend cpu = new CpuBackend(Fixtures.asPeftLoadedIt(model), 128, 16, 2, new LoraCapacity(2, 8))) {
            for (int slot = 1; slot <= 2; slot++) {
                gpu.loadAdapter(slot, adapter(model, variant, TAGS.get(slot)));
                cpu.loadAdapter(slot, adapter(model, variant, TAGS.get(slot)));
            }
            List<GreedyRunner.Result> got = GreedyRunner.run(gpu, prompts, slots, 24);
            List<GreedyRunner.Result> fp32 = GreedyRunner.run(cpu, prompts, slots, 24);
            assertTrue(gpu.graphCount() > 0, "the decode steps ran as graphs");
            for (int s = 0; s < prompts.size(); s++) {
                String how = "mixed " + TAGS.get(slots[s]);
                if (slots[s] != 0) {
                    CudaBackendReferenceTest.assertMatches(variant, how, expected.get(s), got.get(s));
                }
                GreedyRunner.Result ref = fp32.get(s);
                ReferenceCase.Prompt cpuReference = new ReferenceCase.Prompt(s, prompts.get(s), ref.greedy(), Double.NaN,
                        ref.prefillLogits(), ref.decodeLogits());
                CudaBackendReferenceTest.assertMatches(variant, how + " vs cpu", cpuReference, got.get(s));
            }
        }
    }

    /** A slot reloaded with another adapter serves the new one, graphs included; an emptied slot is refused. */
    @Test
    void slotsCanBeReplacedAndEmptied() {
        String variant = "qwen2-bias";
        ReferenceCase.Prompt a = ReferenceCase.load(variant, "adapter-a").get(2);
        ReferenceCase.Prompt b = ReferenceCase.load(variant, "adapter-b").get(2);
        try (LoadedModel model = LoadedModel.load(Fixtures.reference(variant));
             CudaBackend backend = open(model, 16, new LoraCapacity(1, 8))) {
            assertEquals(1, backend.maxLoras());
            assertEquals(8, backend.maxLoraRank());
            backend.loadAdapter(1, adapter(model, variant, "adapter-a"));
            CudaBackendReferenceTest.assertMatches(variant, "slot 1 = a", a,
                    GreedyRunner.run(backend, List.of(a.ids()), new int[] {1}, 24).getFirst());
            int graphs = backend.graphCount();
            backend.loadAdapter(1, adapter(model, variant, "adapter-b"));
            CudaBackendReferenceTest.assertMatches(variant, "slot 1 = b", b,
                    GreedyRunner.run(backend, List.of(b.ids()), new int[] {1}, 24).getFirst());
            assertEquals(graphs, backend.graphCount(), "the graph captured with adapter-a replays with adapter-b");
            backend.unloadAdapter(1);
            var emptySlot = assertThrows(IllegalArgumentException.class, () -> backend.forward(
                    List.of(new SequenceForward(b.ids(), 0, new int[] {0, 1, 2}, LogitsMode.LAST, 1))));
            assertTrue(emptySlot.getMessage().contains("slot 1"), emptySlot.getMessage());
            assertThrows(IllegalArgumentException.class, () -> backend.loadAdapter(2, adapter(model, variant, "adapter-a")));
            assertThrows(IllegalArgumentException.class, () -> backend.loadAdapter(0, adapter(model, variant, "adapter-a")));
        }
    }

    @Test
    void adaptersAboveTheSlotRankOrWithoutSlotsAreRefused() {
        try (LoadedModel model = LoadedModel.load(Fixtures.reference("llama-gqa"));
             CudaBackend small = open(model, 16, new LoraCapacity(1, 4));
             CudaBackend none = open(model, 16, LoraCapacity.NONE)) {
            var rank = assertThrows(IllegalArgumentException.class,
                    () -> small.loadAdapter(1, adapter(model, "llama-gqa", "adapter-a")));
            assertTrue(rank.getMessage().contains("rank 8"), rank.getMessage());
            assertEquals(0, none.maxLoras());
            var noSlots = assertThrows(IllegalArgumentException.class, () -> none.forward(
                    List.of(new SequenceForward(new int[] {1}, 0, new int[] {0}, LogitsMode.LAST, 1))));
            assertTrue(noSlots.getMessage().contains("no LoRA adapter slots"), noSlots.getMessage());
        }
    }
}
