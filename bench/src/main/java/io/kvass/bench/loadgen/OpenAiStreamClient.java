package io.kvass.bench.loadgen;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.HttpResponse.BodySubscribers;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.Flow;
import java.util.concurrent.TimeUnit;

/**
 * Sends benchmark requests to an OpenAI-compatible server with the JDK {@link HttpClient} (HTTP/1.1,
 * asynchronous; one connection per request in flight, kept alive) and times the streamed answer: each
 * buffer the client hands over is stamped with {@link System#nanoTime()} on arrival, then split into SSE
 * events. A request succeeds when the status is 200, no {@code error} event came, at least one token
 * chunk came, and the stream ended with {@code data: [DONE]}.
 */
public final class OpenAiStreamClient implements AutoCloseable {
    static final ObjectMapper JSON = new ObjectMapper();

    private final Options options;
    private final String model;
    private final HttpClient http;
    private final URI uri;

    public OpenAiStreamClient(Options options, String model) {
        this.options = options;
        this.model = model;
        this.http = newHttpClient();
        this.uri = URI.create(options.baseUrl() + options.endpoint());
    }

    static HttpClient newHttpClient() {
        return HttpClient.newBuilder()
                .version(HttpClient.Version.HTTP_1_1) // no h2c upgrade: plain HTTP/1.1 as vLLM's aiohttp speaks
                .connectTimeout(Duration.ofSeconds(10))
                .build();
    }

    /** The JSON body for {@code r}: streamed, usage requested, greedy unless told otherwise. */
    String body(BenchRequest r) {
        ObjectNode b = JSON.createObjectNode();
        b.put("model", model);
        if (options.chat()) {
            ArrayNode messages = b.putArray("messages");
            messages.addObject().put("role", "user").put("content", r.isText() ? r.promptText() : "");
            b.put("max_completion_tokens", r.outputLen());
        } else {
            if (r.isText()) {
                b.put("prompt", r.promptText());
            } else {
                ArrayNode ids = b.putArray("prompt");
                for (int id : r.promptIds()) {
                    ids.add(id);
                }
            }
            b.put("max_tokens", r.outputLen());
        }
        options.temperature().ifPresent(t -> b.put("temperature", t));
        if (options.ignoreEos()) {
            b.put("ignore_eos", true);
        }
        b.put("stream", true);
        b.putObject("stream_options").put("include_usage", true);
        return b.toString();
    }

    public CompletableFuture<RequestResult> send(BenchRequest r) {
        RequestResult result = new RequestResult(r);
        HttpRequest.Builder req = HttpRequest.newBuilder(uri)
                .timeout(Duration.ofMillis((long) (options.timeoutSeconds() * 1000)))
                .header("Content-Type", "application/json")
                .header("Accept", "text/event-stream")
                .POST(HttpRequest.BodyPublishers.ofString(body(r)));
        options.apiKey().ifPresent(k -> req.header("Authorization", "Bearer " + k));
        HttpRequest request = req.build();
        HttpResponse.BodyHandler<Void> handler = info -> {
            if (info.statusCode() != 200) {
                return BodySubscribers.mapping(BodySubscribers.ofString(StandardCharsets.UTF_8), text -> {
                    result.fail("HTTP " + info.statusCode() + ": " + abbreviate(text));
                    return null;
                });
            }
            return BodySubscribers.fromSubscriber(new StreamSubscriber(result));
        };
        result.startNs = System.nanoTime();
        return http.sendAsync(request, handler)
                .orTimeout((long) (options.timeoutSeconds() * 1000), TimeUnit.MILLISECONDS)
                .handle((response, error) -> {
                    if (result.endNs == 0) {
                        result.endNs = System.nanoTime();
                    }
                    if (error != null) {
                        Throwable cause = error instanceof CompletionException && error.getCause() != null
                                ? error.getCause() : error;
                        result.fail(cause.getClass().getSimpleName()
                                + (cause.getMessage() == null ? "" : ": " + cause.getMessage()));
                    } else if (result.error == null && !result.sawDone) {
                        result.fail("the stream ended without data: [DONE]");
                    }
                    return result;
                });
    }

    static String abbreviate(String s) {
        String t = s.strip().replace('\n', ' ');
        return t.length() <= 300 ? t : t.substring(0, 300) + "...";
    }

    /** Handles one response body: stamps buffers, parses events, records token chunks and usage. */
    static final class StreamSubscriber implements Flow.Subscriber<List<ByteBuffer>> {
        private final RequestResult result;
        private final SseParser parser;
        private long now;

        StreamSubscriber(RequestResult result) {
            this.result = result;
            this.parser = new SseParser(this::onEvent);
        }

        @Override
        public void onSubscribe(Flow.Subscription subscription) {
            subscription.request(Long.MAX_VALUE);
        }

        @Override
        public void onNext(List<ByteBuffer> buffers) {
            now = System.nanoTime();
            for (ByteBuffer b : buffers) {
                parser.feed(b);
            }
        }

        @Override
        public void onError(Throwable t) {
            result.endNs = System.nanoTime();
            result.fail("stream broke: " + t);
        }

        @Override
        public void onComplete() {
            now = System.nanoTime();
            parser.finish();
            result.endNs = now;
        }

        void onEvent(String event, String data) {
            if (data.equals("[DONE]")) {
                result.sawDone = true;
                return;
            }
            handleChunk(result, data, now);
        }
    }

    /** Applies one SSE data payload (a JSON chunk) received at {@code nowNs} to {@code result}. */
    static void handleChunk(RequestResult result, String data, long nowNs) {
        JsonNode chunk;
        try {
            chunk = JSON.readTree(data);
        } catch (JsonProcessingException e) {
            result.fail("bad chunk: " + abbreviate(data));
            return;
        }
        JsonNode error = chunk.get("error");
        if (error != null && !error.isNull()) {
            result.fail("error event: " + abbreviate(error.isObject() ? error.path("message").asText(error.toString())
                    : error.asText()));
            return;
        }
        JsonNode choices = chunk.get("choices");
        if (choices != null && choices.isArray() && !choices.isEmpty()) {
            JsonNode c = choices.get(0);
            String text = c.has("delta") ? deltaText(c.get("delta")) : c.path("text").asText("");
            if (!text.isEmpty()) {
                result.tokenChunk(nowNs, text.length());
            }
        }
        JsonNode usage = chunk.get("usage");
        if (usage != null && usage.isObject()) {
            if (usage.hasNonNull("prompt_tokens")) {
                result.usagePromptTokens = usage.get("prompt_tokens").asInt();
            }
            if (usage.hasNonNull("completion_tokens")) {
                result.usageCompletionTokens = usage.get("completion_tokens").asInt();
            }
        }
    }

    private static String deltaText(JsonNode delta) {
        String content = delta.path("content").asText("");
        if (!content.isEmpty()) {
            return content;
        }
        String reasoning = delta.path("reasoning_content").asText("");
        return reasoning.isEmpty() ? delta.path("reasoning").asText("") : reasoning;
    }

    // ---- small synchronous calls made before the run ----

    /** The first model of {@code GET /v1/models}. */
    static String firstModel(Options options) throws IOException, InterruptedException {
        try (HttpClient client = newHttpClient()) {
            HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(options.baseUrl() + "/v1/models"))
                    .timeout(Duration.ofSeconds(30)).GET();
            options.apiKey().ifPresent(k -> req.header("Authorization", "Bearer " + k));
            HttpResponse<String> response = client.send(req.build(), HttpResponse.BodyHandlers.ofString());
            if (response.statusCode() != 200) {
                throw new IOException("GET /v1/models: HTTP " + response.statusCode() + ": "
                        + abbreviate(response.body()));
            }
            JsonNode data = JSON.readTree(response.body()).path("data");
            if (!data.isArray() || data.isEmpty()) {
                throw new IOException("GET /v1/models lists no model");
            }
            return data.get(0).path("id").asText();
        }
    }

    /** Token ids of {@code text} by the server's {@code POST /tokenize} (vLLM's extension), no special tokens. */
    int[] tokenize(String text) throws IOException, InterruptedException {
        ObjectNode b = JSON.createObjectNode();
        b.put("model", model);
        b.put("prompt", text);
        b.put("add_special_tokens", false);
        HttpRequest.Builder req = HttpRequest.newBuilder(URI.create(options.baseUrl() + "/tokenize"))
                .timeout(Duration.ofSeconds(30))
                .header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(b.toString()));
        options.apiKey().ifPresent(k -> req.header("Authorization", "Bearer " + k));
        HttpResponse<String> response = http.send(req.build(), HttpResponse.BodyHandlers.ofString());
        if (response.statusCode() != 200) {
            throw new IOException("POST /tokenize: HTTP " + response.statusCode() + ": " + abbreviate(response.body()));
        }
        JsonNode tokens = JSON.readTree(response.body()).path("tokens");
        int[] ids = new int[tokens.size()];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = tokens.get(i).asInt();
        }
        return ids;
    }

    /** Waits a few seconds for requests still running (after a timeout), then drops them. */
    @Override
    public void close() {
        http.shutdown();
        try {
            if (!http.awaitTermination(Duration.ofSeconds(5))) {
                http.shutdownNow();
            }
        } catch (InterruptedException e) {
            http.shutdownNow();
            Thread.currentThread().interrupt();
        }
    }
}
