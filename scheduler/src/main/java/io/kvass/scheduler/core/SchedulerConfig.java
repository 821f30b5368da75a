package io.kvass.scheduler.core;

/**
 * Limits of one replica's scheduler (vLLM's names).
 *
 * @param maxNumSeqs          sequences running at once
 * @param maxNumBatchedTokens the token budget of one step, prefill and decode alike
 * @param maxModelLen         prompt + output tokens of one sequence
 */
public record SchedulerConfig(int maxNumSeqs, int maxNumBatchedTokens, int maxModelLen, SchedulingPolicy policy,
                              boolean enablePrefixCaching) {

    public SchedulerConfig {
        if (maxNumSeqs < 1 || maxNumBatchedTokens < 1 || maxModelLen < 1) {
            throw new IllegalArgumentException("scheduler limits must be positive: max_num_seqs=" + maxNumSeqs
                    + ", max_num_batched_tokens=" + maxNumBatchedTokens + ", max_model_len=" + maxModelLen);
        }
    }

    public static SchedulerConfig defaults(int maxModelLen) {
        return new SchedulerConfig(256, 2048, maxModelLen, SchedulingPolicy.FCFS, true);
    }
}
