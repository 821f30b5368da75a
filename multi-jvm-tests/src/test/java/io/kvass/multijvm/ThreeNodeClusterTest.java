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
        Path dir = Files.createDirectories(Path.of("target", "nodes"));
        Path adapter = storyAdapter(dir);
        Path conf = dir.resolve("three-nodes.conf");
        Files.writeString(conf, """
                kvass {
                  kv-cache-memory = 16M
                  max-num-seqs = 8
                  # a replica counts as overloaded early, so that a burst of 24 requests spills
                  router { max-queued-per-replica = 2, balance-abs-threshold = 4 }
                  deployments = [{
                    model = "%s"
                    replicas = 2
                    lora { enabled = on, modules = ["story-b=%s"], max-loras = 1, max-lora-rank = 8 }
                  }]
                }
                """.formatted(Fixtures.stories260K().toString().replace("\\", "\\\\"),
                adapter.toAbsolutePath().toString().replace("\\", "\\\\")));
        int[] ports = {KvassNode.freePort(), KvassNode.freePort(), KvassNode.freePort()};
        for (int i = 0; i < 3; i++) {
            NODES.add(KvassNode.start("node" + i, ports[i], List.of("--config", conf.toString(), "--seed-node",
                    KvassNode.address(ports[0]), "--min-nr-of-members", "3", "--devices", "1")));
        }
        for (KvassNode n : NODES) {
            await(n.name + " healthy (a replica reported to its router)", FORM, () -> healthy(n));
        }
    }

    /** llama-gqa's adapter-b (q_proj, v_proj) fits the shapes of stories260K's first two layers. */
    private static Path storyAdapter(Path dir) throws Exception {
        Path adapter = Files.createDirectories(dir.resolve("story-b"));
        Path source = Fixtures.reference("llama-gqa").resolve("adapter-b");
        Files.copy(source.resolve("adapter_model.safetensors"), adapter.resolve("adapter_model.safetensors"),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        Files.writeString(adapter.resolve("adapter_config.json"), Files.readString(source.resolve("adapter_config.json"))
                .replace("\"layers_to_transform\": null", "\"layers_to_transform\": [0, 1]"));
        return adapter;
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

    /** Per replica: its prefix-cache hits (in tokens) and queries, as the gateway of {@code via} last heard them. */
    private static Map<String, long[]> prefixStats(KvassNode via) throws Exception {
        Map<String, long[]> out = new java.util.TreeMap<>();
        for (JsonNode r : via.getJson("/admin/replicas").path("replicas")) {
            out.put(r.path("replica").asText(), new long[] {r.path("prefix_cache_hits").asLong(),
                    r.path("prefix_cache_queries").asLong()});
        }
        return out;
    }

    /** A 200-token shared prefix (a fixed pseudo-random id sequence) and an 8-token suffix of its own. */
    private static List<Integer> sharedPrefixPrompt(int variant) {
        java.util.Random random = new java.util.Random(42);
        List<Integer> ids = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            ids.add(3 + random.nextInt(500));
        }
        java.util.Random own = new java.util.Random(1000 + variant);
        for (int i = 0; i < 8; i++) {
            ids.add(3 + own.nextInt(500));
        }
        return ids;
    }

    private static void settle() throws InterruptedException {
        Thread.sleep(600); // NOTE: a few load reports (every 200 ms at least) bring every gateway the new state
    }

    @Test
    @Order(2)
    void requestsSharingAPrefixReachTheReplicaHoldingItThroughEveryGateway() throws Exception {
        Map<String, Object> first = Map.of("model", MODEL, "prompt", sharedPrefixPrompt(0), "max_tokens", 4);
        assertEquals(200, NODES.getFirst().post("/v1/completions", first).statusCode());
        settle();
        Map<String, long[]> before = prefixStats(NODES.get(1));
        for (int v = 1; v <= 6; v++) {
            KvassNode via = NODES.get(v % 3);
            HttpResponse<String> r = via.post("/v1/completions", Map.of("model", MODEL, "prompt",
                    sharedPrefixPrompt(v), "max_tokens", 4));
            assertEquals(200, r.statusCode(), r.body());
            settle();
        }
        Map<String, long[]> after = prefixStats(NODES.get(1));
        List<String> hitters = new ArrayList<>();
        for (String replica : after.keySet()) {
            long hits = after.get(replica)[0] - before.getOrDefault(replica, new long[2])[0];
            if (hits > 0) {
                hitters.add(replica);
                assertTrue(hits >= 6 * 192, replica + " hit only " + hits + " tokens for six 200-token prefixes");
            }
        }
        assertEquals(1, hitters.size(), "every request reached the replica holding the prefix: " + hitters);
        String holder = hitters.getFirst();

        // Overloaded: 24 long requests with the prefix at once; the holder takes what it has room for, the rest spill.
        List<Future<HttpResponse<String>>> burst = new ArrayList<>();
        for (int v = 0; v < 24; v++) {
            int variant = 100 + v;
            KvassNode via = NODES.get(v % 3);
            burst.add(CLIENTS.submit(() -> via.post("/v1/completions", Map.of("model", MODEL, "prompt",
                    sharedPrefixPrompt(variant), "max_tokens", 200, "ignore_eos", true))));
        }
        for (Future<HttpResponse<String>> f : burst) {
            assertEquals(200, f.get().statusCode(), f.get().body());
        }
        settle();
        Map<String, long[]> spilled = prefixStats(NODES.get(1));
        for (String replica : spilled.keySet()) {
            long queries = spilled.get(replica)[1] - after.get(replica)[1];
            assertTrue(queries > 0, replica + " got none of the burst: the holder " + holder + " did not spill");
        }
    }

    @Test
    @Order(3)
    void requestsForAnAdapterStayOnTheReplicaThatHasItLoaded() throws Exception {
        Map<String, Object> request = Map.of("model", "story-b", "prompt", "Once upon a time", "max_tokens", 8,
                "temperature", 0);
        String expected = text(NODES.getFirst().post("/v1/completions", request));
        settle();
        for (int i = 0; i < 6; i++) {
            assertEquals(expected, text(NODES.get(i % 3).post("/v1/completions", request)));
            settle();
        }
        int holding = 0;
        for (JsonNode r : NODES.get(2).getJson("/admin/replicas").path("replicas")) {
            for (JsonNode a : r.path("adapters")) {
                if (a.path("name").asText().equals("story-b") && a.path("tier").asText().equals("device")) {
                    holding++;
                }
            }
        }
        assertEquals(1, holding, "one replica has the adapter in a device slot and got all its requests");
        assertTrue(NODES.get(2).get("/metrics").body().lines().anyMatch(l -> l.startsWith("kvass:router_decisions_total")
                && l.contains("reason=\"ADAPTER\"")), "routed for the adapter");
    }

    @Test
    @Order(4)
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
    @Order(5)
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
