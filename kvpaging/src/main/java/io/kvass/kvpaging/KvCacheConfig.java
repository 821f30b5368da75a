package io.kvass.kvpaging;

/**
 * @param numBlocks           blocks of KV memory the backend allocated
 * @param blockSize           token slots per block
 * @param enablePrefixCaching whether full blocks are hashed and shared across requests
 */
public record KvCacheConfig(int numBlocks, int blockSize, boolean enablePrefixCaching) {
    public KvCacheConfig {
        if (numBlocks <= 0 || blockSize <= 0) {
            throw new IllegalArgumentException("numBlocks=" + numBlocks + " blockSize=" + blockSize);
        }
    }
}
