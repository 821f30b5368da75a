package io.kvass.worker.sampling;

import java.util.Arrays;
import java.util.Objects;

/**
 * How often each token occurs in one sequence's output, updated once per sampled token.
 *
 * <p>A sparse open-addressing map rather than a vocab-sized {@code int[]}: a 128k vocabulary
 * would cost 512 KiB per running sequence, while outputs touch a few hundred distinct tokens.
 * Penalties iterate the distinct tokens, so a step costs O(distinct), not O(length * vocab).
 *
 * <p>NOTE: single writer (the sampler of the owning sequence); not thread-safe.
 */
public final class OutputTokenCounts {
  private int[] tokens = new int[16]; // distinct tokens, in first-seen order
  private int[] counts = new int[16]; // parallel to tokens
  private int distinct;
  private int total;
  private int[] slots = new int[32]; // power of two; 0 = empty, else index into tokens + 1

  /** Records one more occurrence of {@code tokenId}. */
  void add(int tokenId) {
    if (tokenId < 0) {
      throw new IllegalArgumentException("token id must be non-negative, got " + tokenId);
    }
    total++;
    int slot = find(tokenId);
    if (slots[slot] != 0) {
      counts[slots[slot] - 1]++;
      return;
    }
    if (distinct == tokens.length) {
      tokens = Arrays.copyOf(tokens, distinct * 2);
      counts = Arrays.copyOf(counts, distinct * 2);
    }
    tokens[distinct] = tokenId;
    counts[distinct] = 1;
    distinct++;
    slots[slot] = distinct;
    // Load factor <= 1/2 keeps probe chains short.
    if (distinct * 2 > slots.length) {
      rehash(slots.length * 2);
    }
  }

  /** Occurrences of {@code tokenId} in the output so far (0 if never sampled). */
  public int count(int tokenId) {
    if (tokenId < 0) {
      return 0;
    }
    int entry = slots[find(tokenId)];
    return entry == 0 ? 0 : counts[entry - 1];
  }

  /** Number of distinct tokens; entries are indexed 0..distinct()-1 in first-seen order. */
  public int distinct() {
    return distinct;
  }

  public int tokenAt(int index) {
    Objects.checkIndex(index, distinct);
    return tokens[index];
  }

  public int countAt(int index) {
    Objects.checkIndex(index, distinct);
    return counts[index];
  }

  /** Output length so far. */
  public int total() {
    return total;
  }

  /** The slot holding {@code tokenId}, or the empty slot where it would go. */
  private int find(int tokenId) {
    int mask = slots.length - 1;
    int slot = mix(tokenId) & mask;
    while (slots[slot] != 0 && tokens[slots[slot] - 1] != tokenId) {
      slot = (slot + 1) & mask;
    }
    return slot;
  }

  private void rehash(int capacity) {
    slots = new int[capacity];
    int mask = capacity - 1;
    for (int i = 0; i < distinct; i++) {
      int slot = mix(tokens[i]) & mask;
      while (slots[slot] != 0) {
        slot = (slot + 1) & mask;
      }
      slots[slot] = i + 1;
    }
  }

  // Token ids are dense small integers; spreading them keeps linear probing from clustering.
  private static int mix(int x) {
    int h = x * 0x9E3779B9;
    return h ^ (h >>> 16);
  }
}
