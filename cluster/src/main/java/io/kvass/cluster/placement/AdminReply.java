package io.kvass.cluster.placement;

import io.kvass.worker.wire.CrossNode;

/**
 * The coordinator's answer to an operator's change.
 *
 * @param status an HTTP status: 200, 404 (no such model or node), 400, 503 (the change could not be stored)
 */
public record AdminReply(int status, String message) implements CrossNode {
    public static AdminReply ok(String message) {
        return new AdminReply(200, message);
    }
}
