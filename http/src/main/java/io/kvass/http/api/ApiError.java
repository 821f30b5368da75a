package io.kvass.http.api;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.Optional;

/**
 * A request the API refuses, in OpenAI's error shape:
 * {@code {"error": {"message", "type", "param", "code"}}} with the HTTP status that goes with it.
 */
public final class ApiError extends RuntimeException {
    private final int status;
    private final String type;
    private final Optional<String> param;
    private final Optional<String> code;

    public ApiError(int status, String type, String message, Optional<String> param, Optional<String> code) {
        super(message, null, false, false);
        this.status = status;
        this.type = type;
        this.param = param;
        this.code = code;
    }

    /** 400: the body is not what the endpoint accepts; {@code param} names the offending field. */
    public static ApiError invalid(String message, String param) {
        return new ApiError(400, "invalid_request_error", message, Optional.ofNullable(param), Optional.empty());
    }

    public static ApiError invalid(String message) {
        return invalid(message, null);
    }

    public static ApiError unauthorized() {
        return new ApiError(401, "invalid_request_error",
                "Incorrect API key provided. Send it as the bearer token of the Authorization header.",
                Optional.empty(), Optional.of("invalid_api_key"));
    }

    public static ApiError modelNotFound(String model) {
        return new ApiError(404, "invalid_request_error", "The model `" + model + "` does not exist.",
                Optional.of("model"), Optional.of("model_not_found"));
    }

    public static ApiError notFound(String path) {
        return new ApiError(404, "invalid_request_error", "Unknown route: " + path, Optional.empty(),
                Optional.of("not_found"));
    }

    public static ApiError methodNotAllowed(String method, String path) {
        return new ApiError(405, "invalid_request_error", "Method " + method + " is not allowed on " + path,
                Optional.empty(), Optional.of("method_not_allowed"));
    }

    public static ApiError tooLarge(long limit) {
        return new ApiError(413, "invalid_request_error", "The request body exceeds the limit of " + limit + " bytes.",
                Optional.empty(), Optional.of("request_too_large"));
    }

    public static ApiError bodyTimeout(java.time.Duration limit) {
        return new ApiError(408, "invalid_request_error", "The request body did not arrive within " + limit.toMillis()
                + " ms.", Optional.empty(), Optional.of("request_timeout"));
    }

    public static ApiError overloaded(String message) {
        return new ApiError(503, "server_error", message, Optional.empty(), Optional.of("overloaded"));
    }

    public static ApiError timeout(java.time.Duration limit) {
        return new ApiError(503, "server_error", "The request took longer than " + limit.toMillis()
                + " ms; it was aborted. Stream it (\"stream\": true) or ask for fewer tokens.", Optional.empty(),
                Optional.of("request_timeout"));
    }

    public static ApiError internal(String message) {
        return new ApiError(500, "server_error", message, Optional.empty(), Optional.empty());
    }

    public int status() {
        return status;
    }

    public String type() {
        return type;
    }

    public Optional<String> param() {
        return param;
    }

    public Optional<String> code() {
        return code;
    }

    /** {@code {"error": {...}}}, the body of the response and of an SSE error event. */
    public ObjectNode toJson() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        ObjectNode error = root.putObject("error");
        error.put("message", getMessage());
        error.put("type", type);
        error.put("param", param.orElse(null));
        error.put("code", code.orElse(null));
        return root;
    }
}
