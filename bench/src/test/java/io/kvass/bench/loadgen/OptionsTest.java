package io.kvass.bench.loadgen;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import org.junit.jupiter.api.Test;

class OptionsTest {
    @Test
    void parsesVllmStyleCommandLine() {
        Options o = Options.parse("--base-url", "http://127.0.0.1:8000/", "--model", "stories260K", "--endpoint",
                "/v1/chat/completions", "--num-prompts", "200", "--max-concurrency", "8", "--dataset", "random",
                "--random-input-len", "32", "--random-output-len=64", "--random-range-ratio", "0.25", "--seed", "3",
                "--ignore-eos", "--api-key", "k", "--result-file", "out.json", "--metric-percentiles", "50,99.9",
                "--request-rate", "12.5", "--burstiness", "0.5");
        assertEquals("http://127.0.0.1:8000", o.baseUrl());
        assertEquals("stories260K", o.model().orElseThrow());
        assertTrue(o.chat());
        assertEquals(200, o.numPrompts());
        assertEquals(8, o.maxConcurrency());
        assertEquals(32, o.randomInputLen());
        assertEquals(64, o.randomOutputLen());
        assertEquals(0.25, o.randomRangeRatio());
        assertEquals(3, o.seed());
        assertTrue(o.ignoreEos());
        assertEquals("k", o.apiKey().orElseThrow());
        assertEquals(Path.of("out.json"), o.resultFile().orElseThrow());
        assertArrayEquals(new double[] {50, 99.9}, o.percentiles());
        assertEquals(12.5, o.requestRate());
        assertEquals(0.5, o.burstiness());
    }

    @Test
    void defaults() {
        Options o = Options.parse();
        assertEquals("/v1/completions", o.endpoint());
        assertEquals(Double.POSITIVE_INFINITY, o.requestRate());
        assertEquals(0, o.maxConcurrency());
        assertEquals(1.0, o.burstiness());
        assertEquals(Double.POSITIVE_INFINITY, Options.parse("--request-rate", "inf").requestRate());
    }

    @Test
    void rejectsBadInput() {
        assertThrows(IllegalArgumentException.class, () -> Options.parse("--endpoint", "/v1/embeddings"));
        assertThrows(IllegalArgumentException.class, () -> Options.parse("--dataset", "sharegpt"));
        assertThrows(IllegalArgumentException.class, () -> Options.parse("--num-prompts"));
        assertThrows(IllegalArgumentException.class, () -> Options.parse("--bogus", "1"));
        assertThrows(IllegalArgumentException.class, () -> Options.parse("--random-range-ratio", "1.0"));
        assertThrows(IllegalArgumentException.class, () -> Options.parse("--request-rate", "0"));
        assertThrows(Options.UsageException.class, () -> Options.parse("--help"));
    }
}
