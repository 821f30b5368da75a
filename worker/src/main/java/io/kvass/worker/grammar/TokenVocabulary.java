package io.kvass.worker.grammar;

import io.kvass.worker.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeMap;

/**
 * A model's tokens as the byte strings they add to the text (SentencePiece's {@code ▁} and {@code <0xNN>}
 * byte-fallback pieces, or GPT-2's byte-level alphabet, undone), arranged in a trie so a mask walks every shared
 * prefix once. Special tokens have no bytes: a grammar never allows them, except EOS where it may end.
 * Immutable.
 */
public final class TokenVocabulary {
    private final byte[][] bytes; // [modelVocabSize], null: never allowed inside a grammar
    private final int size;
    private final int[] eos;
    // The trie, flattened: node 0 is the root; children of a node are contiguous and sorted by byte.
    final int[] childStart;  // [nodes + 1] children of n are nodes childStart[n] .. childStart[n+1]-1
    final byte[] nodeByte;   // [nodes]
    final int[] tokenStart;  // [nodes + 1] tokens ending at n are tokens[tokenStart[n] .. tokenStart[n+1]-1]
    final int[] tokens;

    private TokenVocabulary(byte[][] bytes, int size, int[] eos) {
        this.bytes = bytes;
        this.size = size;
        this.eos = eos;
        Node root = new Node();
        for (int id = 0; id < bytes.length; id++) {
            if (bytes[id] != null) {
                Node n = root;
                for (byte b : bytes[id]) {
                    n = n.children.computeIfAbsent(b & 0xff, k -> new Node());
                }
                n.ids.add(id);
            }
        }
        // Breadth-first numbering keeps each node's children contiguous.
        List<Node> order = new ArrayList<>();
        List<Integer> byteOf = new ArrayList<>();
        order.add(root);
        byteOf.add(0);
        int[] starts = new int[16];
        for (int i = 0; i < order.size(); i++) {
            if (i + 1 >= starts.length) {
                starts = Arrays.copyOf(starts, starts.length * 2);
            }
            starts[i] = order.size();
            for (var e : order.get(i).children.entrySet()) {
                order.add(e.getValue());
                byteOf.add(e.getKey());
            }
        }
        int nodes = order.size();
        childStart = Arrays.copyOf(starts, nodes + 1);
        childStart[nodes] = nodes;
        nodeByte = new byte[nodes];
        tokenStart = new int[nodes + 1];
        int total = 0;
        for (int i = 0; i < nodes; i++) {
            nodeByte[i] = (byte) (int) byteOf.get(i);
            tokenStart[i] = total;
            total += order.get(i).ids.size();
        }
        tokenStart[nodes] = total;
        tokens = new int[total];
        for (int i = 0, k = 0; i < nodes; i++) {
            for (int id : order.get(i).ids) {
                tokens[k++] = id;
            }
        }
    }

    private static final class Node {
        final TreeMap<Integer, Node> children = new TreeMap<>();
        final List<Integer> ids = new ArrayList<>(1);
    }

    /**
     * @param modelVocabSize the model's logits width (may exceed the tokenizer's: padding ids get no bytes)
     */
    public static TokenVocabulary of(Tokenizer tokenizer, int modelVocabSize) {
        int n = Math.min(tokenizer.vocabSize(), modelVocabSize);
        boolean byteLevel = isByteLevel(tokenizer, n);
        byte[][] bytes = new byte[modelVocabSize][];
        for (int id = 0; id < n; id++) {
            bytes[id] = tokenizer.isSpecial(id) ? null : bytesOf(tokenizer.tokenText(id), byteLevel);
        }
        int[] eos = tokenizer.eosTokenIds().stream().mapToInt(Integer::intValue).filter(i -> i < modelVocabSize)
                .sorted().toArray();
        for (int id : eos) {
            bytes[id] = null;
        }
        return new TokenVocabulary(bytes, modelVocabSize, eos);
    }

    /** For tests: explicit token bytes (null entries: special). */
    static TokenVocabulary of(byte[][] tokenBytes, int[] eos) {
        byte[][] copy = tokenBytes.clone();
        for (int id : eos) {
            copy[id] = null;
        }
        return new TokenVocabulary(copy, tokenBytes.length, eos.clone());
    }

    public int size() {
        return size;
    }

    /** The bytes of token {@code id}, or null for a token a grammar never allows (special, EOS, padding). */
    public byte[] bytes(int id) {
        return bytes[id];
    }

    int[] eos() {
        return eos;
    }

    boolean isEos(int id) {
        return Arrays.binarySearch(eos, id) >= 0;
    }

    private static boolean isByteLevel(Tokenizer tokenizer, int n) {
        int gpt2 = 0, sentencePiece = 0;
        for (int id = 0; id < n; id++) {
            String piece = tokenizer.tokenText(id);
            if (piece.indexOf('\u0120') >= 0) {
                gpt2++;
            }
            if (piece.indexOf('\u2581') >= 0) {
                sentencePiece++;
            }
        }
        return gpt2 > sentencePiece;
    }

    static byte[] bytesOf(String piece, boolean byteLevel) {
        if (piece.isEmpty()) {
            return null;
        }
        if (piece.length() == 6 && piece.startsWith("<0x") && piece.endsWith(">")) {
            try {
                return new byte[] {(byte) Integer.parseInt(piece.substring(3, 5), 16)};
            } catch (NumberFormatException e) {
                // an ordinary piece that happens to look like one
            }
        }
        if (byteLevel) {
            byte[] out = new byte[piece.length()];
            for (int i = 0; i < piece.length(); i++) {
                int b = ByteLevel.byteOf(piece.charAt(i));
                if (b < 0) {
                    return piece.getBytes(StandardCharsets.UTF_8); // an added token, written as it is
                }
                out[i] = (byte) b;
            }
            return out;
        }
        return piece.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
    }

    /** GPT-2's {@code bytes_to_unicode}, inverted. */
    private static final class ByteLevel {
        private static final int[] BYTE_OF_CHAR = new int[512];

        static {
            Arrays.fill(BYTE_OF_CHAR, -1);
            int extra = 0;
            for (int b = 0; b < 256; b++) {
                boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
                BYTE_OF_CHAR[printable ? b : 256 + extra++] = b;
            }
        }

        static int byteOf(char c) {
            return c < BYTE_OF_CHAR.length ? BYTE_OF_CHAR[c] : -1;
        }
    }
}
