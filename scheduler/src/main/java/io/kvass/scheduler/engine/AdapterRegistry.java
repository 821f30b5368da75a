package io.kvass.scheduler.engine;

import io.kvass.scheduler.core.AdapterGate;
import io.kvass.worker.lora.AdapterManager;
import io.kvass.worker.lora.AdapterSpec;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/**
 * A replica's LoRA adapters as its engine controls them through messages: a request that names an adapter
 * the replica has not seen loads it first (off the engine's thread), unloads come as commands, and the
 * engine reports residency to the gateways. Nothing outside the replica touches its {@link AdapterManager}.
 */
public interface AdapterRegistry {

    /** True when requests for adapter {@code id} can be queued now. */
    boolean knows(long id);

    /** Reads and registers the adapter; fails with the reason when it cannot be served or its files changed. */
    CompletionStage<Void> load(AdapterSource source);

    /** New requests for it are refused; running ones finish, then it leaves memory. No-op when unknown. */
    void unload(String name);

    List<AdapterResidency> residency();

    /** How the scheduler admits the replica's requests. */
    AdapterGate gate();

    /** A replica without LoRA: every adapter request is refused. */
    AdapterRegistry NONE = new AdapterRegistry() {
        @Override
        public boolean knows(long id) {
            return id == 0;
        }

        @Override
        public CompletionStage<Void> load(AdapterSource source) {
            return CompletableFuture.failedFuture(new IllegalArgumentException(
                    "LoRA is not enabled on this replica; adapter '" + source.name() + "' cannot be served"));
        }

        @Override
        public void unload(String name) {
        }

        @Override
        public List<AdapterResidency> residency() {
            return List.of();
        }

        @Override
        public AdapterGate gate() {
            return AdapterGate.FIXED_SLOTS;
        }
    };

    static AdapterRegistry managed(AdapterManager adapters) {
        AdapterGate gate = AdapterGate.managed(adapters);
        return new AdapterRegistry() {
            @Override
            public boolean knows(long id) {
                return id == 0 || adapters.find(id).isPresent();
            }

            @Override
            public CompletionStage<Void> load(AdapterSource source) {
                return adapters.registerAsync(source.name(), Path.of(source.dir())).thenAccept(spec -> check(spec, source));
            }

            private static void check(AdapterSpec spec, AdapterSource source) {
                if (spec.id() != source.id()) {
                    throw new IllegalArgumentException("the files of adapter '" + source.name() + "' in " + source.dir()
                            + " differ from those the gateway registered");
                }
            }

            @Override
            public void unload(String name) {
                if (adapters.find(name).isPresent()) {
                    adapters.unload(name);
                }
            }

            @Override
            public List<AdapterResidency> residency() {
                return adapters.adapters().stream().map(a -> new AdapterResidency(a.spec().name(), a.spec().id(),
                        a.tier().name().toLowerCase(Locale.ROOT), a.slot(), a.inFlight(), a.running(), a.draining()))
                        .toList();
            }

            @Override
            public AdapterGate gate() {
                return gate;
            }
        };
    }
}
