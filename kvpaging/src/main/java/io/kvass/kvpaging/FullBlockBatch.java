package io.kvass.kvpaging;

import java.util.Arrays;

/**
 * Requests whose newly filled full blocks go into the prefix cache together, through
 * {@link KvCacheManager#cacheFullBlocks(FullBlockBatch)}: the same as calling
 * {@link KvCacheManager#cacheFullBlocks(KvCacheManager.Handle, int[], int)} for each, in the order added.
 *
 * <p>NOTE: one batch per scheduler step, then dropped: it stores references, and a young object takes them
 * without G1's card-marking fence (a batch kept across steps would be old).
 */
public final class FullBlockBatch {
    RequestBlocks[] requests;
    int[][] tokenIds;
    int[] numComputedTokens;
    // NOTE: filled by KvCacheManager's first pass: what each request's hashing starts from
    int[] firstToHash;
    long[] parentHi;
    long[] parentLo;
    int size;

    /** A batch for about {@code capacity} requests (it grows past them). */
    public FullBlockBatch(int capacity) {
        int n = Math.max(1, capacity);
        requests = new RequestBlocks[n];
        tokenIds = new int[n][];
        numComputedTokens = new int[n];
        firstToHash = new int[n];
        parentHi = new long[n];
        parentLo = new long[n];
    }

    /** The request's blocks are filled up to {@code numComputedTokens} of {@code tokenIds}. */
    public void add(KvCacheManager.Handle handle, int[] tokenIds, int numComputedTokens) {
        if (size == requests.length) {
            grow();
        }
        requests[size] = (RequestBlocks) handle;
        this.tokenIds[size] = tokenIds;
        this.numComputedTokens[size] = numComputedTokens;
        size++;
    }

    public int size() {
        return size;
    }

    private void grow() {
        int capacity = 2 * size;
        requests = Arrays.copyOf(requests, capacity);
        tokenIds = Arrays.copyOf(tokenIds, capacity);
        numComputedTokens = Arrays.copyOf(numComputedTokens, capacity);
        firstToHash = Arrays.copyOf(firstToHash, capacity);
        parentHi = Arrays.copyOf(parentHi, capacity);
        parentLo = Arrays.copyOf(parentLo, capacity);
    }
}
