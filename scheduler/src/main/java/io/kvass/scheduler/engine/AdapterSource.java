package io.kvass.scheduler.engine;

import io.kvass.worker.wire.CrossNode;

/**
 * A LoRA adapter as a request names it to a replica: enough for a replica that has never seen it to load
 * it (from {@code dir}, readable on every worker node) and to check it loaded the same files ({@code id}
 * derives from the name and the files' content).
 */
public record AdapterSource(String name, long id, String dir) implements CrossNode {
}
