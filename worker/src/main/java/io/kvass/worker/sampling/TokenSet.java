package io.kvass.worker.sampling;

import java.util.Arrays;

/**
 * An immutable set of token ids, stored sorted and distinct.
 *
 * <p>Sized by the distinct tokens, not the vocabulary: a batch of hundreds of sequences would
 * otherwise pay a vocab-sized mask each just to remember which prompt tokens they saw.
 */
public final class TokenSet {
  private static final TokenSet EMPTY = new TokenSet(new int[0]);

  private final int[] ids; // sorted ascending, distinct

  private TokenSet(int[] ids) {
    this.ids = ids;
  }

  public static TokenSet empty() {
    return EMPTY;
  }

  /** Copies, sorts and de-duplicates {@code tokenIds}. */
  public static TokenSet of(int... tokenIds) {
    int[] sorted = tokenIds.clone();
    Arrays.sort(sorted);
    int distinct = 0;
    for (int i = 0; i < sorted.length; i++) {
      if (sorted[i] < 0) {
        throw new IllegalArgumentException("token ids must be non-negative, got " + sorted[i]);
      }
      if (distinct == 0 || sorted[distinct - 1] != sorted[i]) {
        sorted[distinct++] = sorted[i];
      }
    }
    return distinct == 0 ? EMPTY : new TokenSet(Arrays.copyOf(sorted, distinct));
  }

  public boolean contains(int tokenId) {
    return Arrays.binarySearch(ids, tokenId) >= 0;
  }

  public int size() {
    return ids.length;
  }

  /** The {@code i}-th smallest id. */
  public int get(int i) {
    return ids[i];
  }

  TokenSet union(TokenSet other) {
    int[] both = Arrays.copyOf(ids, ids.length + other.ids.length);
    System.arraycopy(other.ids, 0, both, ids.length, other.ids.length);
    return of(both);
  }

  @Override
  public String toString() {
    return Arrays.toString(ids);
  }
}
