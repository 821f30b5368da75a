package io.kvass.http;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.Optional;
import java.util.concurrent.CompletionStage;

/**
 * The operator's view of the cluster, as {@code /admin} serves it: the cluster module implements it over
 * membership, the device inventory and the placement coordinator. Answers are JSON documents; a refusal is an
 * {@link io.kvass.http.api.ApiError} (404 for an unknown node or model, 400 for a bad value).
 *
 * @see AdminRoutes
 */
public interface ClusterAdmin {

    /** {@code GET /admin/nodes}: every member with its address, roles, status, devices and replicas. */
    CompletionStage<JsonNode> nodes();

    /** {@code GET /admin/deployments}: each deployment, its replicas and where they run, what is pending. */
    CompletionStage<JsonNode> deployments();

    /** {@code PUT /admin/deployments/{model}}: a new replica count; scaling down lets running requests finish. */
    CompletionStage<JsonNode> scale(String model, int replicas);

    /**
     * {@code POST /admin/nodes/{id}/drain}: its replicas move elsewhere (running requests finish first), then it
     * leaves the cluster. {@code id} is the node's address or its host:port.
     */
    CompletionStage<JsonNode> drain(String node);

    /** The bearer token of {@code /admin/*} when it differs from the API key. */
    Optional<String> adminToken();
}
