package io.kvass.http;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.kvass.http.api.ApiError;
import io.kvass.http.api.JsonRequest;
import io.kvass.http.metrics.ServingMetrics;
import io.kvass.scheduler.engine.AdapterResidency;
import io.kvass.scheduler.engine.Engine;
import io.kvass.scheduler.router.ReplicaView;
import io.kvass.scheduler.router.RouterActor;
import io.kvass.worker.lora.AdapterLoadException;
import io.kvass.worker.lora.AdapterNames;
import io.kvass.worker.lora.AdapterSpec;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.concurrent.CompletionException;
import java.util.concurrent.CompletionStage;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * vLLM's runtime LoRA endpoints ({@code /v1/load_lora_adapter}, {@code /v1/unload_lora_adapter}), the
 * adapters' cards in {@code /v1/models} and {@code /admin/adapters}: validation and replies, no routing.
 * Refusals are {@link ApiError}s naming the problem.
 */
final class LoraEndpoints {
    private static final Logger LOG = LoggerFactory.getLogger(LoraEndpoints.class);

    private final Map<String, ServedModel> models;

    /** @param models the served models by name (adapters may not take their names) */
    LoraEndpoints(Map<String, ServedModel> models, ServingMetrics metrics) {
        this.models = models;
        for (ServedModel m : models.values()) {
            m.adapters().ifPresent(adapters -> {
                metrics.registerLora(m.name(), adapters.maxLoras());
                for (AdapterSpec a : adapters.all()) {
                    if (models.containsKey(a.name())) {
                        throw new IllegalArgumentException("LoRA adapter '" + a.name() + "' has the name of a served model");
                    }
                }
            });
        }
    }

    /**
     * Reads and checks the adapter off the calling thread; the stage completes with the success text
     * once requests can name it, or fails with an {@link ApiError}.
     */
    CompletionStage<String> load(JsonRequest request) {
        request.allowOnly(Set.of("lora_name", "lora_path"));
        String name = request.string("lora_name").orElse("");
        String path = request.string("lora_path").orElse("");
        if (name.isBlank() || path.isBlank()) {
            throw ApiError.invalid("Both 'lora_name' and 'lora_path' must be provided.",
                    name.isBlank() ? "lora_name" : "lora_path");
        }
        try {
            AdapterNames.check(name);
        } catch (IllegalArgumentException e) {
            throw ApiError.invalid("Invalid 'lora_name': " + e.getMessage() + ".", "lora_name");
        }
        AdapterCatalog adapters = loraModel().adapters().orElseThrow();
        if (models.containsKey(name)) {
            throw ApiError.invalid("'" + name + "' is the name of a served model, not of a LoRA adapter.", "lora_name");
        }
        if (adapters.find(name).isPresent()) {
            throw ApiError.invalid("The lora adapter '" + name + "' has already been loaded.", "lora_name");
        }
        Path dir;
        try {
            dir = Path.of(path);
        } catch (InvalidPathException e) {
            throw ApiError.invalid("lora_path is not a valid path: " + e.getMessage(), "lora_path");
        }
        return adapters.registerAsync(name, dir).handle((spec, failure) -> {
            if (failure != null) {
                throw loadFailure(failure instanceof CompletionException && failure.getCause() != null
                        ? failure.getCause() : failure);
            }
            LOG.info("LoRA adapter '{}' loaded from {} (id {})", name, spec.dir(), spec.id());
            return "Success: LoRA adapter '" + name + "' added successfully.";
        });
    }

    private static RuntimeException loadFailure(Throwable cause) {
        return switch (cause) {
            case AdapterLoadException e -> new ApiError(400, "invalid_request_error", e.getMessage(),
                    Optional.of("lora_path"), Optional.of("invalid_lora_adapter"));
            case IllegalArgumentException e -> ApiError.invalid(e.getMessage(), "lora_name");
            case RuntimeException e -> e;
            default -> new CompletionException(cause);
        };
    }

    /**
     * New requests for the adapter get 404 at once; requests already running with it finish, then it
     * leaves memory. Answers without waiting for them.
     */
    String unload(JsonRequest request) {
        request.allowOnly(Set.of("lora_name", "lora_int_id"));
        String name = request.string("lora_name").orElse("");
        if (name.isBlank()) {
            throw ApiError.invalid("'lora_name' needs to be provided to unload a LoRA adapter.", "lora_name");
        }
        ServedModel model = loraModel();
        if (!model.adapters().orElseThrow().remove(name)) {
            throw notFound(name);
        }
        // NOTE: every replica hears it; requests already running with the adapter finish there first.
        model.router().tell(new RouterActor.Broadcast(model.name(), new Engine.UnloadAdapter(name)));
        LOG.info("LoRA adapter '{}' unloaded; replicas let its running requests finish", name);
        return "Success: LoRA adapter '" + name + "' removed successfully.";
    }

    private static ApiError notFound(String name) {
        return new ApiError(404, "invalid_request_error", "The lora adapter '" + name + "' cannot be found.",
                Optional.of("lora_name"), Optional.of("lora_adapter_not_found"));
    }

    /** The model whose adapters the endpoints manage: the (first) one served with LoRA. */
    private ServedModel loraModel() {
        return models.values().stream().filter(m -> m.adapters().isPresent()).findFirst()
                .orElseThrow(() -> ApiError.invalid("LoRA is not enabled on this server; start it with --enable-lora."));
    }

    /** {@code model}'s adapters as vLLM lists them in {@code /v1/models}: {@code parent} is the base model. */
    void addCards(ArrayNode data, ServedModel model, long created) {
        for (AdapterSpec a : model.adapters().map(AdapterCatalog::all).orElse(List.of())) {
            ObjectNode card = data.addObject();
            card.put("id", a.name());
            card.put("object", "model");
            card.put("created", created);
            card.put("owned_by", "kvass");
            card.put("root", a.dir().toString());
            card.put("parent", model.name());
            card.put("max_model_len", model.maxModelLen());
            card.putArray("permission");
        }
    }

    /** {@code /admin/adapters}: every registered adapter, and where it is on each replica that has seen it. */
    ObjectNode status(List<ReplicaView> replicas) {
        ObjectNode out = JsonNodeFactory.instance.objectNode();
        ArrayNode array = out.putArray("adapters");
        for (ServedModel m : models.values()) {
            for (AdapterSpec a : m.adapters().map(AdapterCatalog::all).orElse(List.of())) {
                ObjectNode o = array.addObject();
                o.put("name", a.name());
                o.put("model", m.name());
                o.put("id", Long.toString(a.id()));
                o.put("path", a.dir().toString());
                ArrayNode on = o.putArray("replicas");
                int inFlight = 0;
                for (ReplicaView v : replicas) {
                    for (AdapterResidency r : v.load().adapters()) {
                        if (r.id() == a.id()) {
                            ObjectNode x = on.addObject();
                            x.put("replica", v.load().identity().replicaId());
                            x.put("node", v.load().identity().node());
                            x.put("tier", r.tier());
                            x.put("slot", r.slot());
                            x.put("requests_in_flight", r.inFlight());
                            x.put("sequences_running", r.running());
                            inFlight += r.inFlight();
                        }
                    }
                }
                o.put("requests_in_flight", inFlight);
            }
        }
        return out;
    }
}
