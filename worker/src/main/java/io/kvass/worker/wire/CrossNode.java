package io.kvass.worker.wire;

/**
 * A message that may cross nodes: a record (or enum) of ids, primitives and other such records, never a
 * tensor, a future or a live object. The cluster serializes every {@code CrossNode} with Kryo over a fixed
 * registry of classes; Java serialization is off, so a message that should cross and does not implement this
 * fails loudly at its first remote send instead of travelling in some slow, unversioned form.
 *
 * <p>NOTE: mark the records, not a protocol's sealed interface: a protocol's private messages (a step's
 * completion, a timer) stay local and must not be marked.
 */
public interface CrossNode {
}
