package io.kvass.scheduler.core;

import io.kvass.kvpaging.Allocation;
import io.kvass.kvpaging.BlockCopy;
import io.kvass.kvpaging.ComputedPrefix;
import io.kvass.kvpaging.FullBlockBatch;
import io.kvass.kvpaging.KvCacheManager;
import io.kvass.worker.lora.SlotGrant;
import io.kvass.worker.step.ContinuingSequence;
import io.kvass.worker.step.NewSequence;
import io.kvass.worker.step.StepPlan;
import io.kvass.worker.step.StepResult;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Iteration-level scheduling (vLLM v1): each step spends one token budget on running sequences
 * first (decodes and the rest of chunked prefills), then admits waiting ones, splitting a long
 * prompt across steps. When KV blocks run out, the last running sequence in policy order is
 * preempted (its blocks freed, recomputed later) — allocation failures are values, never thrown.
 * A waiting sequence whose LoRA adapter is not ready ({@link AdapterGate}) is passed over, not waited on.
 *
 * <p>NOTE: {@link #schedule()} and {@link #update} alternate strictly; single owner, not thread-safe.
 */
public final class BatchScheduler {
    private static final int[] NO_BLOCKS = new int[0];
    private final SchedulerConfig config;
    private final KvCacheManager kv;
    private final int[] eosTokenIds;
    private final int blockSize;
    // NOTE: log2(blockSize) when it is a power of two (as vLLM's are), else -1: advance tests every running sequence
    // every step for a filled block, and two integer divisions there were some 3 µs of a thousand-sequence step
    private final int blockShift;
    private final TreeSet<SequenceState> waiting;
    private final RunningTable running;
    private final Map<String, List<SequenceState>> byRequest = new HashMap<>();
    private final Map<String, SequenceState> bySeqId = new HashMap<>();
    private final List<String> dropped = new ArrayList<>();
    private final AdapterGate adapters;
    private final List<FailedRequest> failed = new ArrayList<>();
    // NOTE: the running slots whose blocks update's loop filled; reused across steps, as it stores only ints
    private int[] filledSlots = new int[16];
    // NOTE: the last plan's step, whose running slots update walks (new, then continuing, as the plan orders them)
    // so that it needs no lookups; the running table holds each one's numScheduled. Empty once updated.
    private StepBuilder lastStep = StepBuilder.NOTHING;
    private long lastPlanId = -1;
    private long nextStepId;
    private long numPreemptions;

    public BatchScheduler(SchedulerConfig config, KvCacheManager kv, Set<Integer> eosTokenIds) {
        this(config, kv, eosTokenIds, AdapterGate.FIXED_SLOTS);
    }

    public BatchScheduler(SchedulerConfig config, KvCacheManager kv, Set<Integer> eosTokenIds, AdapterGate adapters) {
        this.adapters = adapters;
        this.config = config;
        this.kv = kv;
        this.blockSize = kv.blockSize();
        this.blockShift = Integer.bitCount(blockSize) == 1 ? Integer.numberOfTrailingZeros(blockSize) : -1;
        this.eosTokenIds = eosTokenIds.stream().mapToInt(Integer::intValue).sorted().toArray();
        this.waiting = new TreeSet<>(config.policy().order());
        this.running = new RunningTable(config.policy().order(), Math.min(config.maxNumSeqs(), 1024));
    }

    /**
     * Queues a request (n sequences). Rejects one that could never run: too long for the model, or
     * needing more KV blocks than the whole pool.
     */
    public void submit(Request request) {
        if (byRequest.containsKey(request.requestId())) {
            throw new IllegalArgumentException("request id '" + request.requestId() + "' is already in use");
        }
        int promptLen = request.promptTokenIds().length;
        if (promptLen >= config.maxModelLen()) {
            throw new IllegalArgumentException("the prompt has " + promptLen + " tokens; this model's maximum context "
                    + "length is " + config.maxModelLen() + " tokens, and at least one must be left to generate");
        }
        long maxLen = Math.min(config.maxModelLen(), (long) promptLen + request.params().maxTokens());
        long blocksNeeded = (maxLen + kv.blockSize() - 1) / kv.blockSize();
        if (blocksNeeded > kv.numTotalBlocks()) {
            throw new IllegalArgumentException("the request needs up to " + blocksNeeded + " KV blocks but the cache has "
                    + kv.numTotalBlocks() + "; lower max_tokens or the prompt length");
        }
        adapters.onSubmit(request);
        List<SequenceState> seqs = new ArrayList<>(request.params().n());
        long baseSeed = request.params().seed().orElseGet(() -> ThreadLocalRandom.current().nextLong());
        for (int i = 0; i < request.params().n(); i++) {
            SequenceState s = new SequenceState(request, i, baseSeed + i, config.maxModelLen());
            seqs.add(s);
            bySeqId.put(s.seqId(), s);
            waiting.add(s);
        }
        byRequest.put(request.requestId(), seqs);
    }

    /** Drops a request wherever it is and frees its blocks at once. Unknown ids are ignored (already done). */
    public boolean abort(String requestId) {
        List<SequenceState> seqs = byRequest.get(requestId);
        if (seqs == null) {
            return false;
        }
        for (SequenceState s : seqs) {
            if (s.status() != SequenceStatus.FINISHED) {
                finish(s);
            }
        }
        return true;
    }

    /** Ends a sequence early (a stop string seen by the output processor). */
    public void finishSequence(String seqId) {
        SequenceState s = bySeqId.get(seqId);
        if (s != null && s.status() != SequenceStatus.FINISHED) {
            finish(s);
        }
    }

    public StepPlan schedule() {
        adapters.onSchedule();
        StepBuilder step = new StepBuilder(config.maxNumBatchedTokens(), running.size());
        // NOTE: a failed step is never updated: its plan's sequences are stale, and this replaces them
        lastStep = step;
        boolean preempted = scheduleRunning(step);
        // NOTE: after a preemption nothing new is admitted this step, or it would be preempted next step.
        if (!preempted) {
            admitWaiting(step);
        }
        List<String> drop = List.copyOf(dropped);
        dropped.clear();
        lastPlanId = nextStepId;
        // NOTE: the step's lists are handed over, not copied (see StepPlan): this scheduler never touches them again
        return new StepPlan(nextStepId++, Collections.unmodifiableList(step.fresh),
                Collections.unmodifiableList(step.continuing), drop, step.copySources(), step.copyDestinations());
    }

    /** What one step is collecting, and the token budget it has left. */
    private static final class StepBuilder {
        private static final int[] NO_COPIES = new int[0];
        private static final int[] NO_SLOTS = new int[0];
        // NOTE: before the first plan and once a plan is updated: no sequences; only read, never filled
        static final StepBuilder NOTHING = new StepBuilder(0, 0);

        int budget;
        final List<NewSequence> fresh = new ArrayList<>();
        final List<ContinuingSequence> continuing;
        final List<BlockCopy> copies = new ArrayList<>();
        // NOTE: the running slots of the sequences behind fresh and continuing, in the same order
        int[] freshSlots = NO_SLOTS;
        final int[] continuingSlots;

        StepBuilder(int budget, int numRunning) {
            this.budget = budget;
            this.continuing = new ArrayList<>(numRunning);
            this.continuingSlots = new int[numRunning];
        }

        void addFresh(NewSequence entry, int slot) {
            if (fresh.size() == freshSlots.length) {
                freshSlots = Arrays.copyOf(freshSlots, Math.max(8, 2 * freshSlots.length));
            }
            freshSlots[fresh.size()] = slot;
            fresh.add(entry);
        }

        void addContinuing(ContinuingSequence entry, int slot) {
            continuingSlots[continuing.size()] = slot;
            continuing.add(entry);
        }

        /** The running slot of the i-th sequence of the plan: its new ones, then its continuing ones. */
        int slot(int i) {
            return i < fresh.size() ? freshSlots[i] : continuingSlots[i - fresh.size()];
        }

        int numSequences() {
            return fresh.size() + continuing.size();
        }

        int[] copySources() {
            return copies.isEmpty() ? NO_COPIES : copies.stream().mapToInt(BlockCopy::src).toArray();
        }

        int[] copyDestinations() {
            return copies.isEmpty() ? NO_COPIES : copies.stream().mapToInt(BlockCopy::dst).toArray();
        }
    }

    /**
     * Running sequences first, in policy order: the rest of a chunked prefill or one decode token
     * each. Returns whether anyone was preempted to make room.
     */
    private boolean scheduleRunning(StepBuilder step) {
        boolean preempted = false;
        for (int i = 0; i < running.size() && step.budget > 0; i++) {
            int slot = running.slotAt(i);
            int numComputed = running.numComputed(slot);
            int numNew = Math.min(running.numTokens(slot) - numComputed, step.budget);
            if (numComputed + numNew <= running.kvCapacity(slot)) {
                // NOTE: fits in the blocks it holds, where allocateSlots would change nothing (see kvCapacity)
                addContinuing(step, slot, numNew, entryWithinBlocks(slot, numNew));
                continue;
            }
            Allocation alloc = kv.allocateSlots(running.kvHandle(slot), numComputed, numNew);
            while (alloc instanceof Allocation.NoSpace && running.slotAt(running.size() - 1) != slot) {
                preemptLast();
                preempted = true;
                alloc = kv.allocateSlots(running.kvHandle(slot), numComputed, numNew);
            }
            if (!(alloc instanceof Allocation.Granted granted)) {
                preemptLast(); // this sequence itself is the last: nothing else left to take blocks from
                return true;
            }
            if (!granted.copies().isEmpty()) { // NOTE: addAll copies even an empty list into a new array
                step.copies.addAll(granted.copies());
            }
            int[] changed = kv.blockTable(running.kvHandle(slot), granted.firstChangedIndex());
            running.setKvCapacity(slot, (granted.firstChangedIndex() + changed.length) * blockSize);
            addContinuing(step, slot, numNew,
                    new ContinuingSequence(running.seqId(slot), numNew, granted.firstChangedIndex(), changed));
        }
        return preempted;
    }

    private void addContinuing(StepBuilder step, int slot, int numNew, ContinuingSequence entry) {
        step.addContinuing(entry, slot);
        running.setScheduled(slot, numNew);
        step.budget -= numNew;
    }

    /** The plan entry of a running sequence for a step within the blocks it holds: its table does not change. */
    private ContinuingSequence entryWithinBlocks(int slot, int numNew) {
        if (numNew != 1) { // a chunked prefill's rest
            return new ContinuingSequence(running.seqId(slot), numNew, running.kvCapacity(slot) / blockSize,
                    NO_BLOCKS);
        }
        ContinuingSequence entry = running.decodeEntry(slot);
        if (entry == null) {
            entry = new ContinuingSequence(running.seqId(slot), 1, running.kvCapacity(slot) / blockSize,
                    NO_BLOCKS);
            running.setDecodeEntry(slot, entry);
        }
        return entry;
    }

    /**
     * Waiting sequences in policy order, while budget, sequence slots and KV blocks last: a cached
     * prefix is reused, the rest of the prompt is computed, in chunks if the budget is short. One
     * whose adapter is not ready is passed over, so it does not hold up the others.
     */
    private void admitWaiting(StepBuilder step) {
        Map<String, FailedRequest> failing = new LinkedHashMap<>();
        for (Iterator<SequenceState> it = waiting.iterator();
             step.budget > 0 && it.hasNext() && running.size() < config.maxNumSeqs(); ) {
            SequenceState seq = it.next();
            int slot;
            switch (adapters.acquire(seq.request())) {
                case SlotGrant.Ready ready -> slot = ready.slot();
                case SlotGrant.Wait w -> {
                    continue; // its adapter is still loading or every slot is busy: the next one may run
                }
                case SlotGrant.Failed f -> {
                    // NOTE: only a request with no running sequence fails here, so this plan never names it.
                    if (byRequest.get(seq.request().requestId()).stream().noneMatch(x -> x.status() == SequenceStatus.RUNNING)) {
                        failing.putIfAbsent(seq.request().requestId(), new FailedRequest(seq.request(), f.reason()));
                    }
                    continue;
                }
            }
            ComputedPrefix prefix = config.enablePrefixCaching()
                    ? kv.findCachedPrefix(seq.key(), Arrays.copyOf(seq.tokenArray(), seq.numTokens()))
                    : ComputedPrefix.none(seq.key().scope());
            int numNew = Math.min(seq.numTokens() - prefix.numTokens(), step.budget);
            if (!(kv.allocateSlots(seq.key(), prefix, numNew) instanceof Allocation.Granted)) {
                adapters.release(seq.request());
                break;
            }
            it.remove();
            NewSequence entry = new NewSequence(seq.seqId(), seq.tokens(), seq.promptLength(), prefix.numTokens(),
                    numNew, kv.blockTable(seq.seqId()), seq.params(), seq.seed(), slot);
            seq.setStatus(SequenceStatus.RUNNING);
            int runningSlot = running.add(seq, kv.handle(seq.seqId()), prefix.numTokens());
            running.setScheduled(runningSlot, numNew);
            step.addFresh(entry, runningSlot);
            step.budget -= numNew;
        }
        for (FailedRequest f : failing.values()) {
            abort(f.requestId());
            failed.add(f);
        }
    }

    /** Applies a step's result: tokens computed, tokens sampled, stop conditions checked. */
    public SequenceUpdates update(StepPlan plan, StepResult result) {
        if (plan.stepId() != lastPlanId) {
            throw new IllegalStateException("update for step " + plan.stepId() + " but the last plan was " + lastPlanId);
        }
        SequenceUpdates updates = new SequenceUpdates(result.tokens());
        int[] sampledAt = result.sampledAt();
        StepBuilder step = lastStep;
        lastStep = StepBuilder.NOTHING;
        // NOTE: the blocks the step filled go into the prefix cache after the loop, all together (see
        // KvCacheManager.cacheFullBlocks(FullBlockBatch))
        int numFilled = 0;
        int cursor = 0;
        for (int i = 0; i < step.numSequences(); i++) {
            int slot = step.slot(i);
            int sampled = cursor < sampledAt.length && sampledAt[cursor] == i ? cursor++ : -1; // -1: mid-prefill
            // NOTE: a slot is only freed between a plan and its update (none is taken), so a free one is a sequence
            // aborted (or finished by a stop string) while the step ran: its token is dropped
            SequenceState seq = running.sequence(slot);
            if (seq == null) {
                continue;
            }
            boolean filledBlock = advance(slot);
            Optional<Finish> finish = sampled < 0 ? Optional.empty() : append(slot, updates.token(sampled).tokenId());
            if (filledBlock) {
                if (finish.isPresent()) { // NOTE: now, while it still holds its blocks
                    kv.cacheFullBlocks(running.kvHandle(slot), running.tokens(slot), running.numComputed(slot));
                } else {
                    numFilled = addFilled(numFilled, slot);
                }
            }
            if (sampled >= 0) {
                updates.set(sampled, seq, finish);
            }
            if (finish.isPresent()) {
                finish(seq);
            }
        }
        if (numFilled > 0) {
            cacheFilledBlocks(numFilled);
        }
        return updates;
    }

    private int addFilled(int numFilled, int slot) {
        if (numFilled == filledSlots.length) {
            filledSlots = Arrays.copyOf(filledSlots, 2 * numFilled);
        }
        filledSlots[numFilled] = slot;
        return numFilled + 1;
    }

    /**
     * Puts the blocks that the running sequences in the first {@code numFilled} of {@link #filledSlots} filled into
     * the prefix cache. NOTE: in a loop of its own, not update's: reading a sequence's token array (its pending tokens
     * written first) is a cache miss, as the array is touched once per block, and in this short loop the misses of
     * the sixty-odd sequences overlap, where in update's loop of a thousand each came alone.
     */
    private void cacheFilledBlocks(int numFilled) {
        FullBlockBatch batch = new FullBlockBatch(numFilled);
        for (int i = 0; i < numFilled; i++) {
            int slot = filledSlots[i];
            batch.add(running.kvHandle(slot), running.tokens(slot), running.numComputed(slot));
        }
        kv.cacheFullBlocks(batch);
    }

    /**
     * The tokens the plan scheduled for a running sequence are computed: count them. Returns whether they filled
     * a block that goes into the prefix cache.
     */
    private boolean advance(int slot) {
        int before = running.numComputed(slot);
        int after = before + running.numScheduled(slot);
        running.setComputed(slot, after);
        // NOTE: only a step that fills a block has anything to cache (a decode step, one time in blockSize).
        return config.enablePrefixCaching() && blockIndex(before) != blockIndex(after);
    }

    /** The block holding token {@code position} of a sequence. */
    private int blockIndex(int position) {
        return blockShift >= 0 ? position >>> blockShift : position / blockSize;
    }

    /** Appends a sampled token; returns the finish it causes, if any. */
    private Optional<Finish> append(int slot, int token) {
        running.append(slot, token);
        return StopConditions.check(running, slot, token, eosTokenIds);
    }

    private void finish(SequenceState s) {
        if (s.status() == SequenceStatus.RUNNING) {
            running.remove(s);
            dropped.add(s.seqId());
            adapters.release(s.request());
        } else {
            waiting.remove(s);
        }
        s.setStatus(SequenceStatus.FINISHED);
        kv.free(s.seqId());
        bySeqId.remove(s.seqId());
        List<SequenceState> siblings = byRequest.get(s.request().requestId());
        if (siblings.stream().allMatch(x -> x.status() == SequenceStatus.FINISHED)) {
            byRequest.remove(s.request().requestId());
            adapters.onFinished(s.request());
        }
    }

    private void preemptLast() {
        SequenceState victim = running.removeLast();
        kv.free(victim.seqId());
        adapters.release(victim.request());
        victim.preempt();
        waiting.add(victim);
        dropped.add(victim.seqId());
        numPreemptions++;
    }

    /**
     * After a failed step: every running sequence goes back to waiting, to be recomputed from its
     * tokens; the worker forgot them all, so nothing is left to tell it.
     */
    public void requeueAllRunning() {
        while (!running.isEmpty()) {
            preemptLast();
        }
        dropped.clear();
    }

    public boolean hasUnfinished() {
        return !running.isEmpty() || !waiting.isEmpty();
    }

    /** True when a plan would carry work or news for the worker. */
    public boolean hasWorkOrNews() {
        return hasUnfinished() || !dropped.isEmpty();
    }

    public int numRunning() {
        return running.size();
    }

    public int numWaiting() {
        return waiting.size();
    }

    public long numPreemptions() {
        return numPreemptions;
    }

    /** Requests given up on since the last call (their adapter failed to load); they are already aborted. */
    public List<FailedRequest> drainFailed() {
        List<FailedRequest> out = List.copyOf(failed);
        failed.clear();
        return out;
    }

    public AdapterGate adapterGate() {
        return adapters;
    }

    public KvCacheManager kvCache() {
        return kv;
    }

    public SchedulerConfig config() {
        return config;
    }
}
