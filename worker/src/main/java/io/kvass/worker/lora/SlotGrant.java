package io.kvass.worker.lora;

/** The answer to "may a sequence of this adapter run in the next step?": a value, never an exception. */
public sealed interface SlotGrant {

    /** Yes, on this backend slot (0 = base model); the slot stays pinned until {@code release}. */
    record Ready(int slot) implements SlotGrant {
    }

    /** Not yet: the adapter is being read from disk, or every slot is pinned by running sequences. */
    record Wait(String reason) implements SlotGrant {
    }

    /** Never: the adapter is gone or its files cannot be loaded any more; fail the request. */
    record Failed(String reason) implements SlotGrant {
    }
}
