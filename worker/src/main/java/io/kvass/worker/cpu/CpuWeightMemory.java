package io.kvass.worker.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Locale;

/** Where the CPU backend keeps the weight matrices that every decode step streams from memory. */
public enum CpuWeightMemory {
    /**
     * The memory-mapped weight files themselves: no copy, loads at once, page cache shared with other processes.
     * NOTE: matrices that are re-laid out at load (bf16 tiles, {@link CpuWeightFormat#PACKED}) are still copies,
     * in ordinary native memory.
     */
    MMAP,
    /**
     * A private copy in anonymous memory on 2 MB transparent huge pages; the file's pages are dropped from
     * the page cache as each matrix is copied, so the weights are held once. Costs a few seconds at load
     * and the sharing of one page cache between processes serving the same files.
     */
    HUGEPAGES;

    /**
     * What {@code --cpu-weights} is when not given ({@code mmap} off Linux). NOTE: decode at batch 1 streams
     * every weight once per token and is bound by memory bandwidth; on the 2-core benchmark VM the huge-page
     * copy made decode steps ~13% shorter than the file mapping, step by step in one process
     * (docs/benchmarks.md, CPU decode).
     */
    public static final CpuWeightMemory DEFAULT = HugePages.LINUX ? HUGEPAGES : MMAP;

    /** {@code mmap}, {@code hugepages} or {@code auto} (the {@link #DEFAULT}), as {@code --cpu-weights} takes it. */
    public static CpuWeightMemory parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "mmap" -> MMAP;
            case "hugepages" -> HUGEPAGES;
            case "auto" -> DEFAULT;
            default -> throw new IllegalArgumentException("unknown CPU weight memory '" + name
                    + "'; use auto, hugepages or mmap");
        };
    }

    /**
     * Zeroed memory for weights owned by {@code arena}. NOTE: below one huge page (2 MB) the weights go to
     * the ordinary heap outside Java's: a mostly empty huge page per small matrix would waste memory, and
     * such matrices take too little of a step for their TLB misses to matter.
     */
    MemorySegment allocate(long bytes, Arena arena) {
        return this == HUGEPAGES && bytes >= HugePages.SIZE ? HugePages.allocate(bytes, arena) : arena.allocate(bytes, 64);
    }

    /** A tensor's bytes where the kernels will read them: the tensor itself, or a copy owned by {@code arena}. */
    MemorySegment place(MemorySegment tensor, Arena arena) {
        if (this == MMAP) {
            return tensor;
        }
        MemorySegment copy = allocate(tensor.byteSize(), arena);
        copy.copyFrom(tensor);
        released(tensor);
        return copy;
    }

    /** The source of a copy will not be read again: a mapped file's pages need not wait for memory pressure to go. */
    static void released(MemorySegment source) {
        if (source.isMapped() && HugePages.LINUX) {
            HugePages.pageOut(source);
        }
    }
}
