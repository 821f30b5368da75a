/**
 * The cluster router's pure logic: where a gateway sends each request, and when (late binding). No actors here;
 * the gateway's router actor and the replicas' engine actors are thin shells around these classes.
 *
 * <p>Replica side: {@link io.kvass.scheduler.router.ReplicaReporter} makes a
 * {@link io.kvass.scheduler.router.LoadReport} every {@code report-interval} from the engine's load and the prefix
 * cache's update ({@link io.kvass.kvpaging.KvCacheManager#drainPrefixCacheUpdate}); every gateway receives it.
 *
 * <p>Gateway side, all owned by one actor: {@link io.kvass.scheduler.router.LoadView#apply} per report (and a
 * snapshot request back to the replica when it says so); {@link io.kvass.scheduler.router.RouteRequest#of} hashes a
 * prompt; {@link io.kvass.scheduler.router.AdmissionQueue#offer} holds it and
 * {@link io.kvass.scheduler.router.AdmissionQueue#release} places what can be placed, asking a
 * {@link io.kvass.scheduler.router.RoutingPolicy} ({@link io.kvass.scheduler.router.PrefixAwarePolicy} or
 * {@link io.kvass.scheduler.router.RoundRobinPolicy}); call it after each offer and each report.
 */
package io.kvass.scheduler.router;
