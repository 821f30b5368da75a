package io.kvass.multijvm;

import static io.kvass.multijvm.KvassNode.JSON;
import static io.kvass.multijvm.KvassNode.await;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import io.kvass.worker.testing.Fixtures;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/**
 * Three {@code kvass serve} JVMs form a cluster from one configuration file (every node gateway and worker, one
 * device each) and serve stories260K with 2 replicas: through every node's HTTP port, placed on different nodes,
 * scaled up and down through {@code /admin} with no failed request, and a node drained under load.
 * One cluster for the whole class (CI has 2 cores); the tests run in order and build on each other.
 */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ThreeNodeClusterTest {
    private static final Duration FORM = Duration.ofSeconds(120);
    private static final String MODEL = "stories260K";
    private static final List<KvassNode> NODES = new ArrayList<>();
    private static final ExecutorService CLIENTS = Executors.newFixedThreadPool(16);

    @BeforeAll
    static void startCluster() throws Exception {
        Path conf = Files.createDirectories(Path.of("target", "nodes")).resolve("three-nodes.conf");
        Files.writeString(conf, """
                kvass {
                  kv-cache-memory = 16M
                  max-num-seqs = 8
                  deployments = [{ model = "%s", replicas = 2 }]
                }
                """.formatted(Fixtures.stories260K().toString().replace("\\", "\\\\")));
        int[] ports = {KvassNode.freePort(), KvassNode.freePort(), KvassNode.freePort()};
        for (int i = 0; i < 3; i++) {
            NODES.add(KvassNode.start("node" + i, ports[i], List.of("--config", conf.toString(), "--seed-node",
                    KvassNode.address(ports[0]), "--min-nr-of-members", "3", "--devices", "1")));
        }
        for (KvassNode n : NODES) {
            await(n.name + " healthy (a replica reported to its router)", FORM, () -> healthy(n));
        }
    }

    @AfterAll
    static void stopCluster() {
        CLIENTS.shutdownNow();
        NODES.forEach(KvassNode::close);
    }

    private static boolean healthy(KvassNode n) {
        try {
            return n.alive() && n.get("/health").statusCode() == 200;
        } catch (Exception e) {
            return false;
        }
    }

    private static Map<String, Object> completion(int maxTokens) {
        return Map.of("model", MODEL, "prompt", "Once upon a time", "max_tokens", maxTokens, "temperature", 0,
                "ignore_eos", true);
    }

    private static String text(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body()).path("choices").get(0).path("text").asText();
    }

    /** The replicas the gateway of {@code via} sees taking requests: replica id -> node address. */
    private static Map<String, String> replicas(KvassNode via) throws Exception {
        Map<String, String> out = new java.util.TreeMap<>();
        for (JsonNode r : via.getJson("/admin/replicas").path("replicas")) {
            if (r.path("available").asBoolean()) {
                out.put(r.path("replica").asText(), r.path("node").asText());
            }
        }
        return out;
    }

    private static void scale(int replicas) throws Exception {
        HttpResponse<String> r = NODES.getFirst().send("PUT", "/admin/deployments/" + MODEL, Map.of("replicas", replicas));
        assertEquals(200, r.statusCode(), r.body());
    }

    private static void awaitReplicas(KvassNode via, int count) {
        await(count + " replicas on " + count + " nodes", FORM, () -> {
            try {
                Map<String, String> r = replicas(via);
                return r.size() == count && new HashSet<>(r.values()).size() == count;
            } catch (Exception e) {
                return false;
            }
        });
    }

    /** {@code n} long greedy requests through {@code via}, running meanwhile. */
    private static List<Future<HttpResponse<String>>> load(KvassNode via, int n, int maxTokens) {
        List<Future<HttpResponse<String>>> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            out.add(CLIENTS.submit(() -> via.post("/v1/completions", completion(maxTokens))));
        }
        return out;
    }

    private static void assertAllComplete(List<Future<HttpResponse<String>>> requests, String expected) throws Exception {
        for (Future<HttpResponse<String>> f : requests) {
            HttpResponse<String> r = f.get();
            assertEquals(expected, text(r), "a request under load was answered differently: " + r.body());
        }
    }

    @Test
    @Order(1)
    void everyNodeServesAndTwoReplicasRunOnTwoNodes() throws Exception {
        String expected = text(NODES.getFirst().post("/v1/completions", completion(40)));
        assertFalse(expected.isBlank());
        for (KvassNode n : NODES) {
            assertEquals(expected, text(n.post("/v1/completions", completion(40))), "served through " + n.name);
        }
        awaitReplicas(NODES.getFirst(), 2);
        JsonNode nodes = NODES.get(1).getJson("/admin/nodes").path("nodes");
        assertEquals(3, nodes.size(), nodes.toString());
        int withReplica = 0;
        for (JsonNode n : nodes) {
            assertEquals("up", n.path("status").asText(), n.toString());
            assertEquals(1, n.path("devices").size(), n.toString());
            assertEquals("cpu", n.path("devices").get(0).path("kind").asText());
            Set<String> roles = new HashSet<>();
            n.path("roles").forEach(r -> roles.add(r.asText()));
            assertEquals(Set.of("gateway", "worker"), roles);
            withReplica += n.path("replicas").size();
            assertTrue(n.path("replicas").size() <= 1, "one device, at most one replica: " + n);
        }
        assertEquals(2, withReplica, nodes.toString());
        JsonNode deployments = NODES.get(2).getJson("/admin/deployments").path("deployments");
        assertEquals(2, deployments.get(0).path("replicas").asInt());
        assertEquals(2, deployments.get(0).path("placed").size());
    }

    @Test
    @Order(2)
    void scalingToThreeUsesTheThirdNodeAndToOneFailsNoRunningRequest() throws Exception {
        String expected = text(NODES.getFirst().post("/v1/completions", completion(300)));
        scale(3);
        awaitReplicas(NODES.get(1), 3);
        List<Future<HttpResponse<String>>> running = load(NODES.get(2), 12, 300);
        await("requests running on the replicas", FORM, () -> {
            try {
                int sum = 0;
                for (JsonNode r : NODES.get(2).getJson("/admin/replicas").path("replicas")) {
                    sum += r.path("num_requests_running").asInt();
                }
                return sum >= 3;
            } catch (Exception e) {
                return false;
            }
        });
        scale(1);
        assertAllComplete(running, expected);
        awaitReplicas(NODES.getFirst(), 1);
        assertEquals(expected, text(NODES.get(1).post("/v1/completions", completion(300))));
    }

    @Test
    @Order(3)
    void drainingANodeUnderLoadFailsNoRequestAndTheNodeLeaves() throws Exception {
        scale(2);
        KvassNode gateway = NODES.getFirst();
        awaitReplicas(gateway, 2);
        String expected = text(gateway.post("/v1/completions", completion(300)));
        String drained = replicas(gateway).values().stream().filter(a -> !a.equals(gateway.address())).findFirst()
                .orElseThrow();
        KvassNode victim = NODES.stream().filter(n -> n.address().equals(drained)).findFirst().orElseThrow();
        List<Future<HttpResponse<String>>> running = load(gateway, 12, 300);
        Thread.sleep(300);
        HttpResponse<String> drain = gateway.post("/admin/nodes/127.0.0.1:" + victim.clusterPort + "/drain", Map.of());
        assertEquals(200, drain.statusCode(), drain.body());
        assertAllComplete(running, expected);
        await("the drained node's replica up elsewhere", FORM, () -> {
            try {
                Map<String, String> r = replicas(gateway);
                return r.size() == 2 && !r.containsValue(victim.address());
            } catch (Exception e) {
                return false;
            }
        });
        assertTrue(victim.awaitExit(Duration.ofSeconds(60)), "the drained node left the cluster and exited");
        await("two members left", FORM, () -> {
            try {
                return gateway.getJson("/admin/nodes").path("nodes").size() == 2;
            } catch (Exception e) {
                return false;
            }
        });
        assertNotEquals(victim.address(), gateway.address());
        assertEquals(expected, text(gateway.post("/v1/completions", completion(300))));
    }
}
