package io.kvass.scheduler.router;

import io.kvass.kvpaging.PrefixCacheUpdate;
import io.kvass.worker.wire.CrossNode;
import java.util.Map;
import java.util.Objects;

/**
 * What a replica tells every gateway, every {@link RouterSettings#reportInterval()}: its load, its adapters and
 * what changed in its prefix cache. Each gateway keeps the latest per replica in its own {@link LoadView}, so no
 * single node's loss stops routing.
 *
 * @param replicaId     the replica (its sharded entity id)
 * @param address       the node it runs on, as a string (for logs and /admin)
 * @param model         the served model's name; requests name it
 * @param epoch         chosen when the replica's engine starts (e.g. its start time): a new epoch is a restarted
 *                      replica whose sequence numbers, cache and counters start over
 * @param seq           0, 1, 2, ... within the epoch: a gap means a lost {@link PrefixCacheUpdate.Delta}
 * @param sentAtMillis  the replica's wall clock when sent; for logs only (staleness uses the gateway's clock)
 * @param blockSize     tokens per KV block: prompt hashes of another block size never match
 * @param freeKvBlocks  KV blocks free (cached-but-free ones included, as vLLM counts them)
 * @param totalKvBlocks KV blocks in all
 * @param running       sequences in the running batch
 * @param waiting       requests queued at the replica
 * @param maxNumSeqs    the replica's {@code max_num_seqs}
 * @param adapters      adapter id to tier, for the adapters resident on a device slot or in host memory
 * @param receivedFrom  per gateway id, how many requests this replica has received from it in this epoch; lets a
 *                      gateway tell which of its sends the report already counts. Empty when not kept: the gateway
 *                      then assumes all its earlier sends have arrived
 * @param prefixes      the prefix-cache change since report {@code seq - 1}, or the whole cache
 * @param healthy       false while the replica cannot take requests (loading, draining, failing)
 */
public record LoadReport(String replicaId, String address, String model, long epoch, long seq, long sentAtMillis,
                         int blockSize, int freeKvBlocks, int totalKvBlocks, int running, int waiting, int maxNumSeqs,
                         Map<Long, AdapterTier> adapters, Map<String, Long> receivedFrom, PrefixCacheUpdate prefixes,
                         boolean healthy) implements CrossNode {

    public LoadReport {
        Objects.requireNonNull(replicaId, "replicaId");
        Objects.requireNonNull(address, "address");
        Objects.requireNonNull(model, "model");
        Objects.requireNonNull(prefixes, "prefixes");
        adapters = Map.copyOf(adapters);
        receivedFrom = Map.copyOf(receivedFrom);
        if (seq < 0 || blockSize < 1 || totalKvBlocks < 1 || freeKvBlocks < 0 || freeKvBlocks > totalKvBlocks
                || running < 0 || waiting < 0 || maxNumSeqs < 1) {
            throw new IllegalArgumentException("inconsistent load report: " + replicaId + " seq=" + seq + " blockSize="
                    + blockSize + " free/total=" + freeKvBlocks + "/" + totalKvBlocks + " running=" + running
                    + " waiting=" + waiting + " maxNumSeqs=" + maxNumSeqs);
        }
    }
}
