package io.kvass.worker.grammar;

import java.util.ArrayDeque;
import java.util.Arrays;
import java.util.Deque;

/**
 * Thompson's construction of an {@link Rx}: states with byte-range edges and epsilon edges, one start and
 * one accepting state. States that cannot reach the accepting state are pruned after construction, so every
 * non-empty set of states a {@link ByteDfa} reaches is the prefix of some accepted string.
 */
final class ByteNfa {
    /** Bounds what one request can make the server build (a schema with a huge maxLength, say). */
    static final int MAX_STATES = 400_000;

    // Per state: byte edges [lo, hi, target]* in edges[s], epsilon targets in eps[s]. NOTE: after pruning,
    // targets index the live states only.
    final int[][] edges;
    final int[][] eps;
    final int start;
    final int accept;

    private ByteNfa(int[][] edges, int[][] eps, int start, int accept) {
        this.edges = edges;
        this.eps = eps;
        this.start = start;
        this.accept = accept;
    }

    int numStates() {
        return edges.length;
    }

    /** @throws GrammarException if the automaton would be too large or accepts nothing */
    static ByteNfa of(Rx rx) {
        Builder b = new Builder();
        int[] frag = b.build(rx);
        return b.pruned(frag[0], frag[1]);
    }

    private static final class Builder {
        private int[][] edges = new int[64][];
        private int[][] eps = new int[64][];
        private int[] edgeCount = new int[64];
        private int[] epsCount = new int[64];
        private int n;

        int state() {
            if (n == MAX_STATES) {
                throw new GrammarException("the grammar is too large (over " + MAX_STATES
                        + " automaton states); reduce lengths or counts in the schema");
            }
            if (n == edges.length) {
                int cap = n * 2;
                edges = Arrays.copyOf(edges, cap);
                eps = Arrays.copyOf(eps, cap);
                edgeCount = Arrays.copyOf(edgeCount, cap);
                epsCount = Arrays.copyOf(epsCount, cap);
            }
            edges[n] = new int[0];
            eps[n] = new int[0];
            return n++;
        }

        void edge(int from, int lo, int hi, int to) {
            int c = edgeCount[from];
            if (c + 3 > edges[from].length) {
                edges[from] = Arrays.copyOf(edges[from], Math.max(6, edges[from].length * 2));
            }
            edges[from][c] = lo;
            edges[from][c + 1] = hi;
            edges[from][c + 2] = to;
            edgeCount[from] = c + 3;
        }

        void epsilon(int from, int to) {
            int c = epsCount[from];
            if (c + 1 > eps[from].length) {
                eps[from] = Arrays.copyOf(eps[from], Math.max(2, eps[from].length * 2));
            }
            eps[from][c] = to;
            epsCount[from] = c + 1;
        }

        /** Returns {start, end} of a fragment accepting {@code rx}. */
        int[] build(Rx rx) {
            return switch (rx) {
                case Rx.Bytes b -> {
                    int s = state(), e = state();
                    edge(s, b.lo(), b.hi(), e);
                    yield new int[] {s, e};
                }
                case Rx.Seq q -> {
                    if (q.parts().isEmpty()) {
                        int s = state();
                        yield new int[] {s, s};
                    }
                    int[] first = build(q.parts().getFirst());
                    int end = first[1];
                    for (int i = 1; i < q.parts().size(); i++) {
                        int[] next = build(q.parts().get(i));
                        epsilon(end, next[0]);
                        end = next[1];
                    }
                    yield new int[] {first[0], end};
                }
                case Rx.Alt a -> {
                    int s = state(), e = state();
                    for (Rx option : a.options()) {
                        int[] f = build(option);
                        epsilon(s, f[0]);
                        epsilon(f[1], e);
                    }
                    yield new int[] {s, e};
                }
                case Rx.Repeat r -> repeat(r);
                case Rx.SepList l -> sepList(l);
                case Rx.Members m -> members(m);
            };
        }

        private int[] repeat(Rx.Repeat r) {
            int s = state(), end = s;
            for (int i = 0; i < r.min(); i++) {
                int[] f = build(r.item());
                epsilon(end, f[0]);
                end = f[1];
            }
            if (r.max() < 0) {
                int[] f = build(r.item());
                int loop = state();
                epsilon(end, loop);
                epsilon(loop, f[0]);
                epsilon(f[1], loop);
                return new int[] {s, loop};
            }
            int e = state();
            epsilon(end, e);
            for (int i = r.min(); i < r.max(); i++) {
                int[] f = build(r.item());
                epsilon(end, f[0]);
                epsilon(f[1], e);
                end = f[1];
            }
            return new int[] {s, e};
        }

        private int[] members(Rx.Members m) {
            int n = m.members().size();
            int[] none = new int[n + 1], some = new int[n + 1]; // before member i: nothing written / something
            for (int i = 0; i <= n; i++) {
                none[i] = state();
                some[i] = state();
            }
            for (int i = 0; i < n; i++) {
                int[] member = build(m.members().get(i));
                int[] sep = build(m.sep());
                epsilon(none[i], member[0]);
                epsilon(some[i], sep[0]);
                epsilon(sep[1], member[0]);
                epsilon(member[1], some[i + 1]);
                if (!m.required().get(i)) {
                    epsilon(none[i], none[i + 1]);
                    epsilon(some[i], some[i + 1]);
                }
            }
            int e = state();
            epsilon(none[n], e);
            epsilon(some[n], e);
            return new int[] {none[0], e};
        }

        private int[] sepList(Rx.SepList l) {
            int s = state(), e = state();
            if (l.min() == 0) {
                epsilon(s, e);
            }
            if (l.max() == 0) {
                return new int[] {s, e};
            }
            if (l.max() < 0 && l.min() <= 1) {
                int[] item = build(l.item());
                int[] sep = build(l.sep());
                epsilon(s, item[0]);
                epsilon(item[1], e);
                epsilon(item[1], sep[0]);
                epsilon(sep[1], item[0]);
                return new int[] {s, e};
            }
            // item, then min-1 more (sep item), then up to max-min optional ones (or a loop).
            int[] first = build(l.item());
            epsilon(s, first[0]);
            int[] rest = build(new Rx.Repeat(Rx.seq(l.sep(), l.item()), Math.max(0, l.min() - 1),
                    l.max() < 0 ? -1 : l.max() - 1));
            epsilon(first[1], rest[0]);
            epsilon(rest[1], e);
            return new int[] {s, e};
        }

        ByteNfa pruned(int start, int accept) {
            boolean[] forward = reach(start, false);
            boolean[] backward = reach(accept, true);
            int[] renumber = new int[n];
            int live = 0;
            for (int i = 0; i < n; i++) {
                renumber[i] = forward[i] && backward[i] ? live++ : -1;
            }
            if (renumber[start] < 0) {
                throw new GrammarException("the grammar accepts no string at all (contradictory constraints)");
            }
            int[][] outEdges = new int[live][];
            int[][] outEps = new int[live][];
            for (int i = 0; i < n; i++) {
                int to = renumber[i];
                if (to < 0) {
                    continue;
                }
                int[] kept = new int[edgeCount[i]];
                int k = 0;
                for (int j = 0; j < edgeCount[i]; j += 3) {
                    int t = renumber[edges[i][j + 2]];
                    if (t >= 0) {
                        kept[k++] = edges[i][j];
                        kept[k++] = edges[i][j + 1];
                        kept[k++] = t;
                    }
                }
                outEdges[to] = Arrays.copyOf(kept, k);
                int[] keptEps = new int[epsCount[i]];
                k = 0;
                for (int j = 0; j < epsCount[i]; j++) {
                    int t = renumber[eps[i][j]];
                    if (t >= 0) {
                        keptEps[k++] = t;
                    }
                }
                outEps[to] = Arrays.copyOf(keptEps, k);
            }
            return new ByteNfa(outEdges, outEps, renumber[start], renumber[accept]);
        }

        private boolean[] reach(int from, boolean reverse) {
            int[][] adj = reverse ? reverseAdjacency() : null;
            boolean[] seen = new boolean[n];
            Deque<Integer> todo = new ArrayDeque<>();
            seen[from] = true;
            todo.push(from);
            while (!todo.isEmpty()) {
                int s = todo.pop();
                if (reverse) {
                    for (int t : adj[s]) {
                        if (!seen[t]) {
                            seen[t] = true;
                            todo.push(t);
                        }
                    }
                    continue;
                }
                for (int j = 0; j < edgeCount[s]; j += 3) {
                    int t = edges[s][j + 2];
                    if (!seen[t]) {
                        seen[t] = true;
                        todo.push(t);
                    }
                }
                for (int j = 0; j < epsCount[s]; j++) {
                    int t = eps[s][j];
                    if (!seen[t]) {
                        seen[t] = true;
                        todo.push(t);
                    }
                }
            }
            return seen;
        }

        private int[][] reverseAdjacency() {
            int[] count = new int[n];
            for (int s = 0; s < n; s++) {
                for (int j = 0; j < edgeCount[s]; j += 3) {
                    count[edges[s][j + 2]]++;
                }
                for (int j = 0; j < epsCount[s]; j++) {
                    count[eps[s][j]]++;
                }
            }
            int[][] adj = new int[n][];
            for (int s = 0; s < n; s++) {
                adj[s] = new int[count[s]];
                count[s] = 0;
            }
            for (int s = 0; s < n; s++) {
                for (int j = 0; j < edgeCount[s]; j += 3) {
                    int t = edges[s][j + 2];
                    adj[t][count[t]++] = s;
                }
                for (int j = 0; j < epsCount[s]; j++) {
                    int t = eps[s][j];
                    adj[t][count[t]++] = s;
                }
            }
            return adj;
        }
    }
}
