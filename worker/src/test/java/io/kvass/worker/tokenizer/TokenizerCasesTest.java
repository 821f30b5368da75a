package io.kvass.worker.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** llama.cpp's test-tokenizer-0 cases: encode without special tokens must give cases.out exactly. */
class TokenizerCasesTest {

    @TestFactory
    Stream<DynamicTest> llama3() throws IOException {
        return cases("tokenizers/llama3");
    }

    @TestFactory
    Stream<DynamicTest> qwen3() throws IOException {
        return cases("tokenizers/qwen3");
    }

    private static Stream<DynamicTest> cases(String dir) throws IOException {
        Path root = Fixtures.path(dir);
        List<String> inputs = splitCases(Files.readString(root.resolve("cases.inp")));
        List<String> outputs = Files.readAllLines(root.resolve("cases.out"));
        assertEquals(46, inputs.size(), "inputs");
        assertEquals(46, outputs.size(), "outputs");
        Tokenizer tokenizer = Fixtures.tokenizer(dir);
        List<DynamicTest> tests = new ArrayList<>();
        for (int n = 0; n < inputs.size(); n++) {
            int i = n;
            String text = inputs.get(i);
            int[] expected = ids(outputs.get(i));
            tests.add(DynamicTest.dynamicTest("#" + i + " " + escape(text), () -> assertArrayEquals(expected,
                    tokenizer.encode(text, false), () -> "case #" + i + " " + escape(text) + ": got "
                            + Arrays.toString(tokenizer.encode(text, false)))));
        }
        return tests.stream();
    }

    /**
     * As test-tokenizer-0 does: the file is inputs each followed by "\n__ggml_vocab_test__\n", so splitting on
     * that leaves one empty remainder after the last separator, which is not a case.
     */
    static List<String> splitCases(String file) {
        List<String> parts = new ArrayList<>(List.of(file.split("\n__ggml_vocab_test__\n", -1)));
        assertEquals("", parts.removeLast(), "text after the last separator");
        return parts;
    }

    private static int[] ids(String line) {
        String trimmed = line.strip();
        return trimmed.isEmpty() ? new int[0] : Arrays.stream(trimmed.split(" +")).mapToInt(Integer::parseInt).toArray();
    }

    private static String escape(String s) {
        String e = s.replace("\n", "\\n").replace("\t", "\\t");
        return "\"" + (e.length() > 40 ? e.substring(0, 40) + "…" : e) + "\"";
    }
}
