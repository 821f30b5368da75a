package io.kvass.cluster.node;

import com.typesafe.config.Config;
import com.typesafe.config.ConfigFactory;
import io.kvass.cluster.wire.WireProtocol;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The Pekko settings a serving node derives from {@code kvass.*}. They sit below what the user
 * configured (flags, --config, system properties) and above the libraries' reference defaults.
 */
final class NodeConfig {
    static final String SYSTEM_NAME = "kvass";

    private NodeConfig() {
    }

    static Config derived(ServeSettings s) {
        Map<String, Object> m = new HashMap<>();
        m.put("pekko.actor.provider", "cluster");
        m.put("pekko.remote.artery.canonical.hostname", s.cluster().hostname());
        m.put("pekko.remote.artery.canonical.port", s.cluster().port());
        m.put("pekko.cluster.seed-nodes", s.cluster().seedNodes());
        m.put("pekko.cluster.downing-provider-class", "org.apache.pekko.cluster.sbr.SplitBrainResolverProvider");
        // NOTE: the minority side of a partition downs itself, so no replica ever runs twice (kvass serve also
        // exits the JVM of a downed node: see ServeCommand).
        m.put("pekko.cluster.split-brain-resolver.active-strategy", "keep-majority");
        m.put("pekko.cluster.roles", List.copyOf(s.cluster().roles()));
        m.put("pekko.cluster.min-nr-of-members", s.cluster().minNrOfMembers());
        // NOTE: a replica moved by the placement (drain, re-placement) hands off within a few seconds.
        m.put("pekko.cluster.sharding.rebalance-interval", "2s");
        // NOTE: a replica handed off (drain, scale-down, shutdown) finishes its running requests before it stops;
        // these bound how long that may take.
        m.put("pekko.cluster.sharding.handoff-timeout", "10m");
        m.put("pekko.coordinated-shutdown.phases.cluster-sharding-shutdown-region.timeout",
                (s.http().drainTimeout().toMillis() + 10_000) + "ms");
        m.put(ReplicaHost.ENGINE_DISPATCHER + ".type", "PinnedDispatcher");
        m.put(ReplicaHost.ENGINE_DISPATCHER + ".executor", "thread-pool-executor");
        if (s.cluster().managementPort() > 0) {
            m.put("pekko.management.http.hostname", s.cluster().hostname());
            m.put("pekko.management.http.port", s.cluster().managementPort());
        }
        // NOTE: a replica owns its model's memory and running sequences; it must never idle out.
        m.put("pekko.cluster.sharding.passivation.strategy", "none");
        m.put("pekko.cluster.jmx.multi-mbeans-in-same-jvm", "on");
        m.put("pekko.loggers", List.of("org.apache.pekko.event.slf4j.Slf4jLogger"));
        m.put("pekko.logging-filter", "org.apache.pekko.event.slf4j.Slf4jLoggingFilter");
        m.put("pekko.loglevel", "INFO");
        // NOTE: outputs the engine sent before it saw a disconnected client's Abort end as dead letters;
        // that is expected on every disconnect, not worth a log line each.
        m.put("pekko.log-dead-letters", "off");
        m.put("pekko.log-dead-letters-during-shutdown", "off");
        m.put("pekko.coordinated-shutdown.phases.service-requests-done.timeout",
                (s.http().drainTimeout().toMillis() + 10_000) + "ms");
        return ConfigFactory.parseMap(m).withFallback(WireProtocol.PEKKO_CONFIG);
    }
}
