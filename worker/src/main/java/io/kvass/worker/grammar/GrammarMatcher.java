package io.kvass.worker.grammar;

/**
 * Where one sequence stands in its grammar: a function of the tokens it generated, so a preempted, recomputed
 * or migrated sequence rebuilds it by replaying them ({@link #accept} each). Single writer (the sequence's
 * sampler).
 */
public final class GrammarMatcher {
    private final TokenGrammar grammar;
    private int state;

    GrammarMatcher(TokenGrammar grammar) {
        this.grammar = grammar;
        this.state = grammar.start();
    }

    public TokenGrammar grammar() {
        return grammar;
    }

    /** The tokens allowed next (shared, read-only; see {@link TokenGrammar#mask}). */
    public long[] mask() {
        return grammar.mask(state);
    }

    /** Whether {@code token} is allowed next. */
    public boolean allows(int token) {
        long[] mask = mask();
        return token >= 0 && token < grammar.vocabSize() && (mask[token >>> 6] & (1L << token)) != 0;
    }

    /**
     * Advances past {@code token}.
     *
     * @throws IllegalStateException if the grammar does not allow it (a sampler that skipped the mask)
     */
    public void accept(int token) {
        int next = grammar.next(state, token);
        if (next == ByteDfa.DEAD) {
            throw new IllegalStateException("token " + token + " breaks the " + grammar.spec().kind()
                    + " constraint (the sampler did not apply the grammar's mask)");
        }
        state = next;
    }

    /** Whether the text so far is a complete string of the language (EOS is allowed). */
    public boolean isComplete() {
        return grammar.accepting(state);
    }

    /** The automaton state (for tests). */
    int state() {
        return state;
    }
}
