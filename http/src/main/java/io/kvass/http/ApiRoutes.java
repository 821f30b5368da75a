package io.kvass.http;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.api.ApiError;
import io.kvass.http.api.GenerationJob;
import io.kvass.http.api.JsonRequest;
import io.kvass.http.api.RequestParser;
import io.kvass.http.guard.BodyFailure;
import io.kvass.http.guard.HttpErrors;
import io.kvass.http.guard.JsonContentType;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.http.stream.ActiveStreams;
import io.kvass.http.stream.JsonWriter;
import io.kvass.http.stream.RequestStream;
import io.kvass.http.stream.ResponseWriter;
import io.kvass.http.stream.SseWriter;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.engine.EngineStats;
import io.kvass.scheduler.engine.ReplicaLoad;
import io.kvass.scheduler.router.ReplicaView;
import io.kvass.scheduler.router.RouterActor;
import io.kvass.worker.lora.AdapterSpec;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.function.Function;
import java.util.function.Supplier;
import org.apache.pekko.NotUsed;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.Props;
import org.apache.pekko.actor.typed.javadsl.AskPattern;
import org.apache.pekko.http.javadsl.model.ContentType;
import org.apache.pekko.http.javadsl.model.ContentTypes;
import org.apache.pekko.http.javadsl.model.HttpEntities;
import org.apache.pekko.http.javadsl.model.HttpMethod;
import org.apache.pekko.http.javadsl.model.HttpMethods;
import org.apache.pekko.http.javadsl.model.HttpResponse;
import org.apache.pekko.http.javadsl.model.MediaTypes;
import org.apache.pekko.http.javadsl.model.headers.RawHeader;
import org.apache.pekko.http.javadsl.server.AllDirectives;
import org.apache.pekko.http.javadsl.server.ExceptionHandler;
import org.apache.pekko.http.javadsl.server.PathMatchers;
import org.apache.pekko.http.javadsl.server.Route;
import org.apache.pekko.stream.javadsl.Source;
import org.apache.pekko.util.ByteString;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HTTP surface: OpenAI's {@code /v1} API, vLLM's extras ({@code /tokenize}, {@code /detokenize},
 * {@code /health}, {@code /version}, {@code /metrics}, LoRA adapter loading) and {@code /admin}. Routes
 * only validate and translate; each generation request is handed to its own {@link RequestStream} actor.
 */
final class ApiRoutes extends AllDirectives {
    private static final Logger LOG = LoggerFactory.getLogger(ApiRoutes.class);
    private static final ContentType EVENT_STREAM = MediaTypes.TEXT_EVENT_STREAM.toContentType();
    private static final ContentType PROMETHEUS = ContentTypes.parse("text/plain; version=0.0.4; charset=utf-8");
    private static final Duration ASK_TIMEOUT = Duration.ofSeconds(5);
    /** A replica whose last report is older than this is shown as unavailable. */
    private static final Duration REPORT_FRESH = Duration.ofSeconds(2);

    private final ActorSystem<?> system;
    private final HttpSettings settings;
    private final Map<String, ServedModel> models = new LinkedHashMap<>();
    private final ServingMetrics metrics;
    private final ActiveStreams streams;
    private final RequestParser parser;
    private final LoraEndpoints lora;
    private final AtomicBoolean draining = new AtomicBoolean();
    private final Optional<ClusterAdmin> cluster;
    private final long startedAt = System.currentTimeMillis() / 1000;

    ApiRoutes(ActorSystem<?> system, HttpSettings settings, List<ServedModel> served, ServingMetrics metrics,
              ActiveStreams streams, Optional<ClusterAdmin> cluster) {
        this.system = system;
        this.cluster = cluster;
        this.settings = settings;
        served.forEach(m -> models.put(m.name(), m));
        if (models.isEmpty()) {
            throw new IllegalArgumentException("no model to serve");
        }
        this.metrics = metrics;
        this.streams = streams;
        this.parser = new RequestParser(this::requested, settings.toolCallParser());
        models.values().forEach(m -> metrics.register(m.name(), m.maxModelLen()));
        this.lora = new LoraEndpoints(models, metrics);
    }

    /** From now on generation requests get 503: the server is shutting down. */
    void startDraining() {
        draining.set(true);
    }

    /** Every response counted by route, method and status class (the routes' own paths; anything else is "none"). */
    Route route() {
        return extractRequest(request -> mapResponse(response -> {
            metrics.httpResponse(request.getUri().path(), request.method().name(), response.status().intValue());
            return response;
        }, this::routes));
    }

    private Route routes() {
        return handleExceptions(exceptions(), () -> concat(
                path("health", () -> endpoint(HttpMethods.GET, this::health)),
                path("version", () -> endpoint(HttpMethods.GET, this::version)),
                path("metrics", () -> endpoint(HttpMethods.GET, this::metricsText)),
                path("tokenize", () -> endpoint(HttpMethods.POST, this::tokenize)),
                path("detokenize", () -> endpoint(HttpMethods.POST, this::detokenize)),
                pathPrefix("v1", () -> authenticated(() -> concat(
                        path("models", () -> endpoint(HttpMethods.GET, this::listModels)),
                        path("completions", () -> endpoint(HttpMethods.POST,
                                () -> generate(GenerationJob.Kind.COMPLETION))),
                        path(PathMatchers.segment("chat").slash("completions"), () -> endpoint(HttpMethods.POST,
                                () -> generate(GenerationJob.Kind.CHAT))),
                        path("load_lora_adapter", () -> endpoint(HttpMethods.POST, this::loadAdapter)),
                        path("unload_lora_adapter", () -> endpoint(HttpMethods.POST, this::unloadAdapter)),
                        notFound()))),
                pathPrefix("admin", () -> adminAuthenticated(() -> concat(
                        path("replicas", () -> endpoint(HttpMethods.GET, this::replicas)),
                        path("adapters", () -> endpoint(HttpMethods.GET, this::adapters)),
                        path("nodes", () -> endpoint(HttpMethods.GET, () -> admin(ClusterAdmin::nodes))),
                        path(PathMatchers.segment("nodes").slash(PathMatchers.segment()).slash("drain"),
                                node -> endpoint(HttpMethods.POST, () -> parameterOptional("migrate", migrate ->
                                        admin(c -> c.drain(node, migrate.map("true"::equalsIgnoreCase).orElse(false)))))),
                        path("deployments", () -> endpoint(HttpMethods.GET, () -> admin(ClusterAdmin::deployments))),
                        path(PathMatchers.segment("deployments").slash(PathMatchers.segment()),
                                model -> endpoint(HttpMethods.PUT, () -> scale(model))),
                        notFound()))),
                notFound()));
    }

    // ---- endpoints ----

    private Route generate(GenerationJob.Kind kind) {
        return withBody(body -> {
            long arrival = System.nanoTime();
            if (draining.get()) {
                throw ApiError.overloaded("The server is shutting down.");
            }
            JsonRequest request = JsonRequest.parse(body);
            GenerationJob job = kind == GenerationJob.Kind.CHAT ? parser.chat(request) : parser.completion(request);
            // NOTE: admission is the gateway's router's: it holds the request until a replica has room, or
            // refuses it when its queue (max-waiting) is full; no replica is asked.
            return onComplete(admit(job.model().base()), admitted -> {
                if (admitted.isFailure()) {
                    throw unwrap(admitted.failed().get());
                }
                return job.stream() ? stream(job, arrival) : respond(job, arrival);
            });
        });
    }

    private CompletionStage<Boolean> admit(ServedModel model) {
        return AskPattern.ask(model.router(), RouterActor.Admit::new, ASK_TIMEOUT, system.scheduler())
                .thenApply(room -> {
                    if (!room) {
                        throw ApiError.overloaded("The server is overloaded: " + settings.maxWaiting()
                                + " requests are waiting. Retry later.");
                    }
                    return true;
                });
    }

    private Route stream(GenerationJob job, long arrival) {
        int buffer = (int) Math.min(1 << 16, job.prompts().stream().mapToLong(p -> p.params().maxTokens()).sum()
                * job.n() + 2L * job.numChoices() + 8);
        Source<ByteString, NotUsed> source = Source.<ByteString>queue(buffer)
                .mapMaterializedValue(queue -> {
                    streams.bodyOpened();
                    SseWriter writer = new SseWriter(job, queue);
                    return new Opened(writer, spawn(job, writer, arrival));
                })
                .watchTermination((opened, done) -> {
                    done.whenComplete((d, failure) -> {
                        streams.bodyClosed();
                        if (!opened.writer().completed()) {
                            opened.stream().tell(RequestStream.ClientGone.INSTANCE);
                        }
                    });
                    return NotUsed.getInstance();
                });
        return complete(HttpResponse.create()
                .addHeader(RawHeader.create("Cache-Control", "no-cache"))
                .withEntity(HttpEntities.createChunked(EVENT_STREAM, source)));
    }

    private record Opened(SseWriter writer, ActorRef<RequestStream.Command> stream) {
    }

    private Route respond(GenerationJob job, long arrival) {
        CompletableFuture<ObjectNode> body = new CompletableFuture<>();
        ActorRef<RequestStream.Command> stream = spawn(job, new JsonWriter(job, body), arrival);
        // A client that closed its connection will never read the answer: free the replica's work now.
        return extractRequest(request -> {
            request.getAttribute(ConnectionWatch.CLOSED).ifPresent(closing -> {
                Runnable cancel = closing.onClose(() -> {
                    if (!body.isDone()) {
                        stream.tell(RequestStream.ClientGone.INSTANCE);
                        // NOTE: the aborted stream never writes this body; left pending, the route (and with it
                        // the connection's whole stream) would wait for it forever.
                        body.completeExceptionally(new ApiError(400, "invalid_request_error",
                                "The client closed the connection.", Optional.empty(), Optional.of("client_closed")));
                    }
                });
                body.whenComplete((json, failure) -> cancel.run());
            });
            return timingOut(stream, body);
        });
    }

    /** Past request-timeout nobody will read the answer either. */
    private Route timingOut(ActorRef<RequestStream.Command> stream, CompletableFuture<ObjectNode> body) {
        return withRequestTimeoutResponse(request -> {
            stream.tell(RequestStream.ClientGone.INSTANCE);
            return error(ApiError.timeout(settings.requestTimeout()));
        }, () -> completeWithFuture(body.handle((json, failure) -> failure == null ? json(json)
                : error(unwrap(failure)))));
    }

    private ActorRef<RequestStream.Command> spawn(GenerationJob job, ResponseWriter writer,
                                                  long arrival) {
        return system.systemActorOf(RequestStream.create(job, writer, metrics, streams, arrival), "request-" + job.id(),
                Props.empty());
    }

    private Route listModels() {
        ObjectNode list = JsonNodeFactory.instance.objectNode();
        list.put("object", "list");
        ArrayNode data = list.putArray("data");
        for (ServedModel m : models.values()) {
            ObjectNode model = data.addObject();
            model.put("id", m.name());
            model.put("object", "model");
            model.put("created", startedAt);
            model.put("owned_by", "kvass");
            model.put("root", m.root());
            model.putNull("parent");
            model.put("max_model_len", m.maxModelLen());
            model.putArray("permission");
            lora.addCards(data, m, startedAt);
        }
        return complete(json(list));
    }

    private Route loadAdapter() {
        return withBody(body -> onComplete(lora.load(JsonRequest.parse(body)), loaded -> {
            if (loaded.isFailure()) {
                throw unwrap(loaded.failed().get());
            }
            return complete(text(loaded.get()));
        }));
    }

    private Route unloadAdapter() {
        return withBody(body -> complete(text(lora.unload(JsonRequest.parse(body)))));
    }

    private Route adapters() {
        return onComplete(replicaViews(), t -> complete(json(lora.status(t.isSuccess() ? t.get() : List.of()))));
    }

    private Route tokenize() {
        return withBody(body -> {
            JsonRequest request = JsonRequest.parse(body);
            ServedModel model = requested(request.string("model")).base();
            int[] tokens = parser.tokenize(request, model);
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            out.put("count", tokens.length);
            out.put("max_model_len", model.maxModelLen());
            ArrayNode array = out.putArray("tokens");
            for (int t : tokens) {
                array.add(t);
            }
            out.putNull("token_strs");
            return complete(json(out));
        });
    }

    private Route detokenize() {
        return withBody(body -> {
            JsonRequest request = JsonRequest.parse(body);
            request.allowOnly(Set.of("model", "tokens"));
            ServedModel model = requested(request.string("model")).base();
            if (!request.has("tokens")) {
                throw ApiError.invalid("`tokens` is required.", "tokens");
            }
            List<Integer> tokens = request.intList("tokens");
            int[] ids = new int[tokens.size()];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = tokens.get(i);
                if (ids[i] < 0 || ids[i] >= model.vocabSize()) {
                    throw ApiError.invalid("Token id " + ids[i] + " is out of vocabulary.", "tokens");
                }
            }
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            out.put("prompt", model.tokenizer().decode(ids, false));
            return complete(json(out));
        });
    }

    /** 200 when every served model has a replica that takes requests. */
    private Route health() {
        return onComplete(replicaViews(), t -> {
            boolean up = t.isSuccess() && models.keySet().stream().allMatch(m -> t.get().stream()
                    .anyMatch(v -> v.load().accepting() && v.load().identity().model().equals(m)));
            return up ? complete(HttpResponse.create().withStatus(200))
                    : complete(error(ApiError.overloaded("A model replica is not available.")));
        });
    }

    private Route version() {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        out.put("version", Version.get());
        return complete(json(out));
    }

    private Route metricsText() {
        return onComplete(replicaViews(), t -> {
            if (t.isSuccess()) {
                metrics.replicas(t.get().stream().map(ReplicaView::load).toList());
                long now = System.nanoTime();
                models.keySet().forEach(model -> metrics.replicaAvailable(model, t.get().stream().anyMatch(v ->
                        v.load().identity().model().equals(model) && v.load().accepting()
                                && now - v.receivedNanos() < REPORT_FRESH.toNanos())));
            }
            return complete(HttpResponse.create().withEntity(HttpEntities.create(PROMETHEUS, metrics.scrape())));
        });
    }

    /** Every replica this gateway's router knows, with its last report. */
    private Route replicas() {
        return onComplete(routerState(), t -> {
            ObjectNode out = JsonNodeFactory.instance.objectNode();
            ArrayNode array = out.putArray("replicas");
            List<ReplicaView> views = new ArrayList<>(t.isSuccess() ? t.get().replicas() : List.of());
            views.sort(java.util.Comparator.comparing(v -> v.load().identity().replicaId()));
            long now = System.nanoTime();
            for (ReplicaView v : views) {
                ReplicaLoad load = v.load();
                EngineStats s = load.stats();
                ObjectNode r = array.addObject();
                r.put("replica", load.identity().replicaId());
                r.put("model", load.identity().model());
                r.put("node", load.identity().node());
                r.put("accepting", load.accepting());
                r.put("available", load.accepting() && now - v.receivedNanos() < REPORT_FRESH.toNanos());
                r.put("report_age_ms", (now - v.receivedNanos()) / 1_000_000);
                r.put("num_requests_running", s.numRunning());
                r.put("num_requests_waiting", s.numWaiting());
                r.put("num_kv_blocks", s.numKvBlocks());
                r.put("num_free_kv_blocks", s.numFreeKvBlocks());
                r.put("kv_cache_usage", s.kvUsage());
                r.put("prefix_cache_queries", s.prefixCacheQueries());
                r.put("prefix_cache_hits", s.prefixCacheHits());
                r.put("prefix_cache_hit_rate", s.prefixCacheQueries() == 0 ? 0.0
                        : (double) s.prefixCacheHits() / s.prefixCacheQueries());
                r.put("num_preemptions", s.numPreemptions());
                ArrayNode adapters = r.putArray("adapters");
                load.adapters().forEach(a -> adapters.addObject().put("name", a.name()).put("tier", a.tier()));
            }
            out.put("active_streams", streams.size());
            out.put("num_requests_held", t.isSuccess() ? t.get().held() : 0);
            return complete(json(out));
        });
    }

    // ---- plumbing ----

    /** A served model by name, else a LoRA adapter of one; absent: the first model. */
    private RequestedModel requested(Optional<String> name) {
        if (name.isEmpty()) {
            return RequestedModel.base(models.values().iterator().next());
        }
        ServedModel m = models.get(name.get());
        if (m != null) {
            return RequestedModel.base(m);
        }
        for (ServedModel base : models.values()) {
            Optional<AdapterSpec> adapter = base.adapters().flatMap(c -> c.find(name.get()));
            if (adapter.isPresent()) {
                return new RequestedModel(base, adapter);
            }
        }
        throw ApiError.modelNotFound(name.get());
    }

    private CompletionStage<RouterActor.State> routerState() {
        ServedModel any = models.values().iterator().next();
        return AskPattern.ask(any.router(), RouterActor.GetReplicas::new, ASK_TIMEOUT, system.scheduler());
    }

    private CompletionStage<List<ReplicaView>> replicaViews() {
        return routerState().thenApply(RouterActor.State::replicas);
    }

    private Route endpoint(HttpMethod method, Supplier<Route> inner) {
        // NOTE: HEAD reaches GET routes as GET (transparent-head-requests), so it is allowed wherever GET is.
        String allow = method == HttpMethods.GET ? "GET, HEAD" : method.name();
        return concat(method(method, inner), extractMethod(m -> extractUri(uri ->
                complete(error(ApiError.methodNotAllowed(m.name(), uri.path())).addHeader(RawHeader.create("Allow",
                        allow))))));
    }

    private Route notFound() {
        return extractUri(uri -> complete(error(ApiError.notFound(uri.path()))));
    }

    /** {@code /admin/*}: the admin token when one is set, else the API key. */
    private Route adminAuthenticated(Supplier<Route> inner) {
        return bearer(cluster.flatMap(ClusterAdmin::adminToken).or(settings::apiKey), inner);
    }

    private Route admin(Function<ClusterAdmin, CompletionStage<JsonNode>> call) {
        if (cluster.isEmpty()) {
            return notFound();
        }
        return onComplete(call.apply(cluster.get()), t -> {
            if (t.isFailure()) {
                throw unwrap(t.failed().get());
            }
            return complete(json(t.get()));
        });
    }

    /** {@code PUT /admin/deployments/{model}} with {@code {"replicas": N}}. */
    private Route scale(String model) {
        return withBody(body -> {
            JsonRequest request = JsonRequest.parse(body);
            request.allowOnly(Set.of("replicas"));
            int replicas = request.integer("replicas").orElseThrow(
                    () -> ApiError.invalid("'replicas' is required.", "replicas"));
            if (replicas < 0 || replicas > 10_000) {
                throw ApiError.invalid("'replicas' must be in 0..10000, got " + replicas + ".", "replicas");
            }
            return admin(c -> c.scale(model, replicas));
        });
    }

    private Route authenticated(Supplier<Route> inner) {
        return bearer(settings.apiKey(), inner);
    }

    private Route bearer(Optional<String> token, Supplier<Route> inner) {
        if (token.isEmpty()) {
            return inner.get();
        }
        byte[] expected = ("Bearer " + token.get()).getBytes(StandardCharsets.UTF_8);
        return optionalHeaderValueByName("Authorization", header -> {
            boolean ok = header.map(h -> MessageDigest.isEqual(h.trim().getBytes(StandardCharsets.UTF_8), expected))
                    .orElse(false);
            return ok ? inner.get() : complete(error(ApiError.unauthorized()));
        });
    }

    /**
     * The whole request body: JSON (else 415), at most max-body-size bytes (else 413), all of it within
     * the body timeout (else 408, and the connection closes: the rest of the body may still be coming).
     */
    private Route withBody(Function<byte[], Route> inner) {
        return extractRequestEntity(entity -> extractMaterializer(mat -> {
            JsonContentType.require(entity.getContentType().mediaType().toString());
            // NOTE: an announced length over the limit is refused before a byte of the body is read.
            if (entity.getContentLengthOption().orElse(0) > settings.maxBodyBytes()) {
                throw ApiError.tooLarge(settings.maxBodyBytes());
            }
            Duration timeout = settings.limits().bodyTimeout();
            return onComplete(entity.withSizeLimit(settings.maxBodyBytes())
                    .toStrict(timeout.toMillis(), settings.maxBodyBytes(), mat), strict -> {
                if (strict.isFailure()) {
                    Throwable cause = unwrapCause(strict.failed().get());
                    if (BodyFailure.tooLarge(cause)) {
                        throw ApiError.tooLarge(settings.maxBodyBytes());
                    }
                    if (BodyFailure.timedOut(cause)) {
                        return complete(HttpErrors.closing(ApiError.bodyTimeout(timeout)));
                    }
                    LOG.debug("a request body could not be read", cause);
                    throw ApiError.invalid("The request body could not be read.");
                }
                return inner.apply(strict.get().getData().toArray());
            });
        }));
    }

    private ExceptionHandler exceptions() {
        return ExceptionHandler.newBuilder()
                .match(ApiError.class, e -> complete(error(e)))
                .match(CompletionException.class, e -> complete(error(unwrap(e))))
                .matchAny(e -> {
                    LOG.error("request failed", e);
                    return complete(error(ApiError.internal("Internal error: " + e)));
                })
                .build();
    }

    private static ApiError unwrap(Throwable t) {
        Throwable cause = unwrapCause(t);
        if (cause instanceof ApiError e) {
            return e;
        }
        LOG.error("request failed", cause);
        return ApiError.internal("Internal error: " + cause);
    }

    private static Throwable unwrapCause(Throwable t) {
        Throwable cause = t;
        while ((cause instanceof CompletionException || cause instanceof java.util.concurrent.ExecutionException)
                && cause.getCause() != null) {
            cause = cause.getCause();
        }
        return cause;
    }

    static HttpResponse json(JsonNode body) {
        return HttpResponse.create().withEntity(HttpEntities.create(ContentTypes.APPLICATION_JSON,
                body.toString().getBytes(StandardCharsets.UTF_8)));
    }

    static HttpResponse text(String body) {
        return HttpResponse.create().withEntity(HttpEntities.create(ContentTypes.TEXT_PLAIN_UTF8, body));
    }

    static HttpResponse error(ApiError e) {
        HttpResponse response = json(e.toJson()).withStatus(e.status());
        if (e.status() == 503) {
            response = response.addHeader(RawHeader.create("Retry-After", "1"));
        }
        if (e.status() == 401) {
            response = response.addHeader(RawHeader.create("WWW-Authenticate", "Bearer"));
        }
        return response;
    }
}
