package io.kvass.worker.lora;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class AdapterNamesTest {
    @ParameterizedTest
    @ValueSource(strings = {"sql", "support", "Llama-3.1-8B-sql", "org/support-v2", "a", "tenant:7@v1+fix", "x_y.z"})
    void modelIdLikeNamesAreAccepted(String name) {
        assertDoesNotThrow(() -> AdapterNames.check(name));
    }

    @ParameterizedTest
    @ValueSource(strings = {"", " ", "a\u0000b", "<script>", "../etc", "a/../b", "a//b", "a/", "/abs", ".hidden",
        "-flag", "tab\tname", "new\nline", "naïve", "a b", "quote\"", "back\\slash", "semi;colon"})
    void namesWithControlsMarkupOrClimbingAreRefused(String name) {
        assertThrows(IllegalArgumentException.class, () -> AdapterNames.check(name));
    }

    @org.junit.jupiter.api.Test
    void namesAreBounded() {
        assertDoesNotThrow(() -> AdapterNames.check("a".repeat(AdapterNames.MAX_LENGTH)));
        assertThrows(IllegalArgumentException.class, () -> AdapterNames.check("a".repeat(AdapterNames.MAX_LENGTH + 1)));
        assertThrows(IllegalArgumentException.class, () -> AdapterNames.check("a".repeat(10_000)));
        assertThrows(IllegalArgumentException.class, () -> AdapterNames.check(null));
    }
}
