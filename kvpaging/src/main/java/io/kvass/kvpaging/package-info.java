/**
 * Paged KV cache bookkeeping: which fixed-size blocks of KV memory each sequence owns.
 *
 * <p>This module manages block ids only; the backend owns the K/V memory and addresses a token
 * slot as {@code blockId * blockSize + offset}. {@link io.kvass.kvpaging.KvCacheManager} is the
 * entry point (vLLM v1's {@code KVCacheManager}); {@link io.kvass.kvpaging.BlockPool} holds the
 * reference counts, the LRU free queue and the prefix cache. Nothing here is thread-safe: one
 * owner (the replica's engine) drives it, single-writer.
 */
package io.kvass.kvpaging;
