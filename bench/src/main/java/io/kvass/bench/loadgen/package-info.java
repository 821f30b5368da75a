/**
 * An HTTP load generator for OpenAI-compatible servers, modelled on {@code vllm bench serve}:
 * random prompts (token ids for {@code /v1/completions}, random words for {@code /v1/chat/completions}),
 * closed-loop ({@code --max-concurrency}) or open-loop Poisson/gamma arrivals ({@code --request-rate},
 * {@code --burstiness}), streamed responses timed chunk by chunk (TTFT, ITL, TPOT, end-to-end latency),
 * a vLLM-style table and a JSON result. Entry point: {@link io.kvass.bench.loadgen.LoadGenerator}.
 * Only the JDK {@link java.net.http.HttpClient} (HTTP/1.1, asynchronous) and Jackson are used.
 */
package io.kvass.bench.loadgen;
