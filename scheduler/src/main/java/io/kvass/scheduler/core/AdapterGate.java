package io.kvass.scheduler.core;

import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.SlotGrant;

/**
 * What the scheduler asks about a request's LoRA adapter: may it be queued, may a sequence of it
 * join the next step (and on which backend slot), and when it lets go. Admission skips a sequence
 * whose adapter is not ready; everyone else keeps running.
 */
public interface AdapterGate {

    /**
     * A request is being queued.
     *
     * @throws IllegalArgumentException when its adapter is unknown or being unloaded (the request is rejected)
     */
    void onSubmit(Request request);

    /** One of the request's sequences wants to run in the next step; {@link SlotGrant.Ready} pins its slot. */
    SlotGrant acquire(Request request);

    /** A sequence that was granted a slot left the running batch (finished, aborted or preempted). */
    void release(Request request);

    /** Every sequence of the request finished or was aborted. */
    void onFinished(Request request);

    /** A step is being planned (no forward pass runs now): the moment to apply deferred slot changes. */
    default void onSchedule() {
    }

    /** Hear when a wait may be over (an adapter finished loading), e.g. to wake an idle engine. */
    default void addListener(Runnable onChange) {
    }

    /** Adapters pinned by the caller: each request runs on its own {@link Request#adapterSlot()}, always ready. */
    AdapterGate FIXED_SLOTS = new AdapterGate() {
        @Override
        public void onSubmit(Request request) {
        }

        @Override
        public SlotGrant acquire(Request request) {
            return new SlotGrant.Ready(request.adapterSlot());
        }

        @Override
        public void release(Request request) {
        }

        @Override
        public void onFinished(Request request) {
        }
    };

    /**
     * Adapters managed per replica: a request names its adapter by {@code scope().adapterId()} (0 = base
     * model; its {@code adapterSlot} is ignored) and gets whatever slot the manager assigns.
     */
    static AdapterGate managed(AdapterManager adapters) {
        return new AdapterGate() {
            @Override
            public void onSubmit(Request request) {
                adapters.beginRequest(request.scope().adapterId());
            }

            @Override
            public SlotGrant acquire(Request request) {
                return adapters.acquire(request.scope().adapterId());
            }

            @Override
            public void release(Request request) {
                adapters.release(request.scope().adapterId());
            }

            @Override
            public void onFinished(Request request) {
                adapters.endRequest(request.scope().adapterId());
            }

            @Override
            public void onSchedule() {
                adapters.syncDevice();
            }

            @Override
            public void addListener(Runnable onChange) {
                adapters.addListener(onChange);
            }
        };
    }
}
