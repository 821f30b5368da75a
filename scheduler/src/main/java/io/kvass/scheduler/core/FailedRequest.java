package io.kvass.scheduler.core;

/** A request the scheduler gave up on after accepting it: its adapter can no longer be loaded. */
public record FailedRequest(Request request, String reason) {

    public String requestId() {
        return request.requestId();
    }
}
