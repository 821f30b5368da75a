package io.kvass.scheduler.engine;

import io.kvass.scheduler.core.SchedulerConfig;
import io.kvass.worker.cpu.CpuBackend;
import io.kvass.worker.model.LoadedModel;
import io.kvass.worker.sampling.SamplingParams;
import io.kvass.worker.testing.Fixtures;
import io.kvass.worker.testing.IdTokenizer;
import io.kvass.worker.testing.ReferenceCase;
import java.util.List;

/** The llama-gqa reference model and its base prompts, opened once per test JVM, and engines over it. */
final class LlamaGqaFixture {
    static final LoadedModel MODEL = LoadedModel.load(Fixtures.reference("llama-gqa"));
    static final List<ReferenceCase.Prompt> PROMPTS = ReferenceCase.load("llama-gqa", "base");

    private LlamaGqaFixture() {
    }

    static LocalEngine engine(int numBlocks, SchedulerConfig config) {
        return LocalEngine.of(new CpuBackend(MODEL, numBlocks, 16, 2), new IdTokenizer(512), config);
    }

    /** Greedy with EOS ignored: the references always run 24 steps. */
    static SamplingParams greedy(int maxTokens) {
        return SamplingParams.greedy(maxTokens).toBuilder().ignoreEos(true).build();
    }
}
