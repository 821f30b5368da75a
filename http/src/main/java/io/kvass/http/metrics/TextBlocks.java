package io.kvass.http.metrics;

import io.kvass.scheduler.engine.EngineStats;
import io.kvass.scheduler.engine.IterationTokens;
import io.kvass.scheduler.engine.ReplicaLoad;
import java.util.List;

/**
 * The series whose vLLM names the Prometheus client will not register ({@code _total} and {@code _info}
 * are suffixes it reserves), written in the text format by hand: {@code vllm:iteration_tokens_total}, a
 * histogram, and {@code vllm:cache_config_info}, a gauge fixed at 1 whose labels carry the cache config.
 */
final class TextBlocks {
    private TextBlocks() {
    }

    /** The per-replica labels of the engine series, in the client's order: model_name, node, replica. */
    private static String labels(ReplicaLoad r) {
        return "model_name=\"" + escape(r.identity().model()) + "\",node=\"" + escape(r.identity().node())
                + "\",replica=\"" + escape(r.identity().replicaId()) + "\"";
    }

    static void iterationTokens(StringBuilder out, List<ReplicaLoad> replicas) {
        out.append("# HELP vllm:iteration_tokens_total Histogram of number of tokens per engine_step.\n");
        out.append("# TYPE vllm:iteration_tokens_total histogram\n");
        replicas.forEach(r -> {
            IterationTokens h = r.stats().iterationTokens();
            String labels = labels(r);
            for (int i = 0; i < IterationTokens.BOUNDS.size(); i++) {
                out.append("vllm:iteration_tokens_total_bucket{").append(labels).append(",le=\"")
                        .append((double) IterationTokens.BOUNDS.get(i)).append("\"} ").append(h.counts().get(i))
                        .append('\n');
            }
            out.append("vllm:iteration_tokens_total_bucket{").append(labels).append(",le=\"+Inf\"} ")
                    .append(h.count()).append('\n');
            out.append("vllm:iteration_tokens_total_count{").append(labels).append("} ").append(h.count()).append('\n');
            out.append("vllm:iteration_tokens_total_sum{").append(labels).append("} ").append((double) h.sum())
                    .append('\n');
        });
    }

    /** vLLM's CacheConfig.metrics_info() keys that kvass has, with Python's spelling of the values. */
    static void cacheConfig(StringBuilder out, List<ReplicaLoad> replicas) {
        out.append("# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig\n");
        out.append("# TYPE vllm:cache_config_info gauge\n");
        for (ReplicaLoad r : replicas) {
            EngineStats s = r.stats();
            out.append("vllm:cache_config_info{block_size=\"").append(s.blockSize())
                    .append("\",cache_dtype=\"auto\",enable_prefix_caching=\"").append(s.prefixCaching() ? "True" : "False")
                    .append("\",engine=\"0\",").append(labels(r)).append(",num_cpu_blocks=\"None\"")
                    .append(",num_gpu_blocks=\"").append(s.numKvBlocks()).append("\"} 1.0\n");
        }
    }

    private static String escape(String value) {
        return value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n");
    }
}
