package io.kvass.worker.grammar;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.concurrent.ConcurrentHashMap;

/**
 * A compiled grammar over one vocabulary: the byte automaton plus, per automaton state, the mask of tokens
 * that keep the text a prefix of some string of the language (EOS where the text is complete). Masks are
 * computed on first need by one walk of the vocabulary trie and kept; {@link #warm} computes the early ones
 * ahead of time, off the step loop. Thread-safe: one instance serves every sequence that uses the grammar.
 */
public final class TokenGrammar {
    /** The state after EOS: only EOS again. */
    public static final int ENDED = -2;

    private final GrammarSpec spec;
    private final ByteDfa dfa;
    private final TokenVocabulary vocab;
    private final int words;
    private final ConcurrentHashMap<Integer, long[]> masks = new ConcurrentHashMap<>();
    private final long[] eosOnly;

    TokenGrammar(GrammarSpec spec, ByteDfa dfa, TokenVocabulary vocab) {
        this.spec = spec;
        this.dfa = dfa;
        this.vocab = vocab;
        this.words = (vocab.size() + 63) >>> 6;
        this.eosOnly = new long[words];
        for (int id : vocab.eos()) {
            eosOnly[id >>> 6] |= 1L << id;
        }
    }

    public GrammarSpec spec() {
        return spec;
    }

    public int vocabSize() {
        return vocab.size();
    }

    public int start() {
        return dfa.start();
    }

    /** A fresh matcher at the start of the language. */
    public GrammarMatcher matcher() {
        return new GrammarMatcher(this);
    }

    /**
     * The allowed tokens in {@code state} as a bitmask ({@code [ceil(vocab / 64)]}, bit {@code id % 64} of word
     * {@code id / 64}). Shared: callers must not write to it.
     */
    public long[] mask(int state) {
        if (state == ENDED) {
            return eosOnly;
        }
        long[] mask = masks.get(state);
        if (mask == null) {
            mask = compute(state);
            masks.putIfAbsent(state, mask);
        }
        return mask;
    }

    /** The state after {@code token}, {@link #ENDED} after EOS where allowed, or {@link ByteDfa#DEAD}. */
    public int next(int state, int token) {
        if (state == ENDED) {
            return vocab.isEos(token) ? ENDED : ByteDfa.DEAD;
        }
        if (vocab.isEos(token)) {
            return dfa.accepting(state) || !dfa.hasExits(state) ? ENDED : ByteDfa.DEAD;
        }
        byte[] b = token < vocab.size() ? vocab.bytes(token) : null;
        return b == null ? ByteDfa.DEAD : dfa.walk(state, b);
    }

    /** Whether the text in {@code state} is a complete string of the language. */
    public boolean accepting(int state) {
        return state == ENDED || dfa.accepting(state);
    }

    /** Automaton states built so far (for tests and benchmarks). */
    public int numStates() {
        return dfa.numStates();
    }

    /**
     * Computes the masks of up to {@code maxStates} states in breadth-first order of bytes from the start, so the
     * first steps of every request find them ready. Returns how many it computed.
     */
    public int warm(int maxStates) {
        Deque<Integer> todo = new ArrayDeque<>();
        todo.add(dfa.start());
        int done = 0;
        java.util.Set<Integer> visited = new java.util.HashSet<>();
        visited.add(dfa.start());
        while (!todo.isEmpty() && done < maxStates) {
            int s = todo.poll();
            mask(s);
            done++;
            for (int b = 0; b < 256; b++) {
                int t = dfa.next(s, b);
                if (t != ByteDfa.DEAD && visited.add(t)) {
                    todo.add(t);
                }
            }
        }
        return done;
    }

    private long[] compute(int state) {
        long[] mask = new long[words];
        if (dfa.accepting(state)) {
            for (int id : vocab.eos()) {
                mask[id >>> 6] |= 1L << id;
            }
        }
        int[] nodeStack = new int[64], stateStack = new int[64];
        int top = 0;
        nodeStack[top] = 0;
        stateStack[top++] = state;
        boolean any = false;
        synchronized (dfa) {
            while (top > 0) {
                int node = nodeStack[--top], s = stateStack[top];
                int[] row = dfa.row(s);
                for (int c = vocab.childStart[node]; c < vocab.childStart[node + 1]; c++) {
                    int t = row[vocab.nodeByte[c] & 0xff];
                    if (t == ByteDfa.DEAD) {
                        continue;
                    }
                    for (int k = vocab.tokenStart[c]; k < vocab.tokenStart[c + 1]; k++) {
                        int id = vocab.tokens[k];
                        mask[id >>> 6] |= 1L << id;
                        any = true;
                    }
                    if (vocab.childStart[c] < vocab.childStart[c + 1]) {
                        if (top == nodeStack.length) {
                            nodeStack = java.util.Arrays.copyOf(nodeStack, top * 2);
                            stateStack = java.util.Arrays.copyOf(stateStack, top * 2);
                        }
                        nodeStack[top] = c;
                        stateStack[top++] = t;
                    }
                }
            }
        }
        if (!any && !dfa.accepting(state)) {
            // No token spells any continuation (a vocabulary without some byte): end rather than fail the step.
            return eosOnly;
        }
        return mask;
    }
}
