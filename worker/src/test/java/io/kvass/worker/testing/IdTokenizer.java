package io.kvass.worker.testing;

import io.kvass.worker.tokenizer.Tokenizer;
import java.util.Arrays;
import java.util.OptionalInt;
import java.util.Set;
import java.util.stream.Collectors;

/** For reference models that ship no tokenizer: token {@code i} reads as {@code " <i>"}. */
public final class IdTokenizer implements Tokenizer {
    private final int vocabSize;

    public IdTokenizer(int vocabSize) {
        this.vocabSize = vocabSize;
    }

    @Override
    public int[] encode(String text, boolean addSpecialTokens) {
        return Arrays.stream(text.trim().split("\\s+")).filter(s -> !s.isEmpty())
                .mapToInt(s -> Integer.parseInt(s.substring(1, s.length() - 1))).toArray();
    }

    @Override
    public String decode(int[] ids, boolean skipSpecialTokens) {
        return Arrays.stream(ids).mapToObj(i -> " <" + i + ">").collect(Collectors.joining());
    }

    @Override
    public int vocabSize() {
        return vocabSize;
    }

    @Override
    public OptionalInt bosTokenId() {
        return OptionalInt.empty();
    }

    @Override
    public Set<Integer> eosTokenIds() {
        return Set.of();
    }

    @Override
    public boolean isSpecial(int id) {
        return false;
    }

    @Override
    public String tokenText(int id) {
        return "<" + id + ">";
    }
}
