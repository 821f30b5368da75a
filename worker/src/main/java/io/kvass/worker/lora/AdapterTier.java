package io.kvass.worker.lora;

/** Where a registered adapter is: the fastest tier that holds it. */
public enum AdapterTier {
    /** In a backend slot: sequences can use it in the next step. */
    DEVICE,
    /** Decoded in host memory: a free slot away from running. */
    HOST,
    /** Being read from disk on the loader executor. */
    LOADING,
    /** Only on disk: the next request reads it again. */
    DISK
}
