package io.kvass.worker.lora;

import io.kvass.worker.backend.Backend;

/** Where the adapter manager puts adapters into slots: a backend, or a test double. */
public interface AdapterDevice {

    int maxLoras();

    /** NOTE: called only between steps (see {@link Backend#loadAdapter}). */
    void load(int slot, LoraWeights weights);

    void unload(int slot);

    static AdapterDevice of(Backend backend) {
        return new AdapterDevice() {
            @Override
            public int maxLoras() {
                return backend.maxLoras();
            }

            @Override
            public void load(int slot, LoraWeights weights) {
                backend.loadAdapter(slot, weights);
            }

            @Override
            public void unload(int slot) {
                backend.unloadAdapter(slot);
            }
        };
    }
}
