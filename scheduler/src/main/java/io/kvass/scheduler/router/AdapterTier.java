package io.kvass.scheduler.router;

/**
 * Where a replica holds a LoRA adapter. An adapter a replica can load but holds in neither tier is on disk
 * (known, not resident) and is simply absent from its {@link LoadReport#adapters()}.
 */
public enum AdapterTier {
    /** In a device slot: a request runs at once. */
    DEVICE,
    /** In host memory: a copy to the device away. */
    HOST
}
