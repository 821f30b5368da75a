package io.kvass.scheduler.engine;

import io.kvass.worker.wire.CrossNode;

/**
 * Where one adapter is on one replica and what uses it, as reported to the gateways.
 *
 * @param tier "device" (in a backend slot), "host" (decoded in memory) or "disk"
 */
public record AdapterResidency(String name, long id, String tier, int slot, int inFlight, int running,
                               boolean draining) implements CrossNode {
}
