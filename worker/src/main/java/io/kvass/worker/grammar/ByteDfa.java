package io.kvass.worker.grammar;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The subset construction of a {@link ByteNfa}, built lazily: a DFA state is created when some walk first
 * reaches it, and its 256 transitions are computed together on first use. Because the NFA is pruned to
 * states that can still accept, "the walk is alive" means exactly "the bytes so far are a prefix of some
 * accepted string".
 *
 * <p>Thread-safe: shared by every sequence using the grammar; growth happens under the object's lock.
 */
final class ByteDfa {
    static final int DEAD = -1;
    private static final int UNKNOWN = -2;

    private final ByteNfa nfa;
    private final Map<Key, Integer> ids = new HashMap<>();
    private final List<int[]> sets = new ArrayList<>();
    private final List<int[]> rows = new ArrayList<>(); // [256] next state, or UNKNOWN before first use
    private final List<Boolean> accepting = new ArrayList<>();
    private final int start;
    private final int[] mark; // closure's visited marks: mark[s] == stamp means seen in this closure
    private int stamp;

    ByteDfa(ByteNfa nfa) {
        this.nfa = nfa;
        this.mark = new int[nfa.numStates()];
        this.start = intern(closure(new int[] {nfa.start}, 1));
    }

    int start() {
        return start;
    }

    synchronized int numStates() {
        return sets.size();
    }

    synchronized boolean accepting(int state) {
        return accepting.get(state);
    }

    /** The state after {@code b} (0..255), or {@link #DEAD}. */
    synchronized int next(int state, int b) {
        return row(state)[b];
    }

    /** All 256 transitions of {@code state}. NOTE: the caller must hold this object's lock while reading it. */
    int[] row(int state) {
        int[] row = rows.get(state);
        if (row[0] == UNKNOWN) {
            fill(state, row);
        }
        return row;
    }

    /** The state after {@code bytes}, or {@link #DEAD}. */
    synchronized int walk(int state, byte[] bytes) {
        int s = state;
        for (int i = 0; i < bytes.length && s != DEAD; i++) {
            s = row(s)[bytes[i] & 0xff];
        }
        return s;
    }

    /** Whether some byte leads on from {@code state} (false: only the end of input is left). */
    synchronized boolean hasExits(int state) {
        for (int t : row(state)) {
            if (t != DEAD) {
                return true;
            }
        }
        return false;
    }

    private void fill(int state, int[] row) {
        int[] set = sets.get(state);
        // Targets per byte, gathered per edge range; most sets have few edges.
        int[][] targets = new int[256][];
        int[] counts = new int[256];
        for (int s : set) {
            int[] e = nfa.edges[s];
            for (int j = 0; j < e.length; j += 3) {
                for (int b = e[j]; b <= e[j + 1]; b++) {
                    if (targets[b] == null) {
                        targets[b] = new int[4];
                    } else if (counts[b] == targets[b].length) {
                        targets[b] = Arrays.copyOf(targets[b], counts[b] * 2);
                    }
                    targets[b][counts[b]++] = e[j + 2];
                }
            }
        }
        Map<Key, Integer> sameTargets = new HashMap<>();
        for (int b = 0; b < 256; b++) {
            if (counts[b] == 0) {
                row[b] = DEAD;
                continue;
            }
            Key raw = new Key(sortedDistinct(targets[b], counts[b]));
            Integer known = sameTargets.get(raw);
            if (known == null) {
                known = intern(closure(raw.states, raw.states.length));
                sameTargets.put(raw, known);
            }
            row[b] = known;
        }
    }

    private int intern(int[] set) {
        Key key = new Key(set);
        Integer id = ids.get(key);
        if (id != null) {
            return id;
        }
        int created = sets.size();
        ids.put(key, created);
        sets.add(set);
        int[] row = new int[256];
        Arrays.fill(row, UNKNOWN);
        rows.add(row);
        accepting.add(Arrays.binarySearch(set, nfa.accept) >= 0);
        return created;
    }

    /** The epsilon closure of {@code seeds[0..n)}, sorted. */
    private int[] closure(int[] seeds, int n) {
        int now = ++stamp;
        int[] stack = new int[Math.max(16, n)];
        int top = 0;
        int[] out = new int[Math.max(16, n)];
        int size = 0;
        for (int i = 0; i < n; i++) {
            if (mark[seeds[i]] != now) {
                mark[seeds[i]] = now;
                if (top == stack.length) {
                    stack = Arrays.copyOf(stack, top * 2);
                }
                stack[top++] = seeds[i];
            }
        }
        while (top > 0) {
            int s = stack[--top];
            if (size == out.length) {
                out = Arrays.copyOf(out, size * 2);
            }
            out[size++] = s;
            for (int t : nfa.eps[s]) {
                if (mark[t] != now) {
                    mark[t] = now;
                    if (top == stack.length) {
                        stack = Arrays.copyOf(stack, top * 2);
                    }
                    stack[top++] = t;
                }
            }
        }
        int[] set = Arrays.copyOf(out, size);
        Arrays.sort(set);
        return set;
    }

    private static int[] sortedDistinct(int[] values, int n) {
        int[] v = Arrays.copyOf(values, n);
        Arrays.sort(v);
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (k == 0 || v[k - 1] != v[i]) {
                v[k++] = v[i];
            }
        }
        return Arrays.copyOf(v, k);
    }

    private record Key(int[] states) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && Arrays.equals(states, k.states);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(states);
        }
    }
}
