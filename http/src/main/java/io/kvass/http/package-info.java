/**
 * kvass's HTTP surface: OpenAI's API ({@code /v1/completions}, {@code /v1/chat/completions},
 * {@code /v1/models}) with SSE streaming, vLLM's extras, {@code /metrics} and {@code /admin}.
 *
 * <p>A request flows: {@link io.kvass.http.ApiRoutes} (auth, body limit, admission) →
 * {@link io.kvass.http.api.RequestParser} (validation, chat template, tokens) →
 * {@link io.kvass.http.stream.RequestStream} (one actor per request: submits to the replica's Engine,
 * writes each output through a {@link io.kvass.http.stream.ResponseWriter}, aborts on disconnect).
 */
package io.kvass.http;
