package io.kvass.worker.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Locale;

/** Where the CPU backend keeps the weight matrices that every decode step streams from memory. */
public enum CpuWeightMemory {
    /** The memory-mapped weight files themselves: no copy, loads at once, page cache shared with other processes. */
    MMAP,
    /**
     * A private copy in anonymous memory on 2 MB transparent huge pages. NOTE: on the 2-core benchmark VM
     * this memory streamed faster than the file mapping in the same minutes (see docs/benchmarks.md); the
     * copy costs a second or two at load, and the file's pages are dropped from the page cache once copied.
     */
    HUGEPAGES;

    /** What {@code --cpu-weights} is when not given. */
    public static final CpuWeightMemory DEFAULT = MMAP;

    /** {@code mmap} or {@code hugepages}, as {@code --cpu-weights} takes it. */
    public static CpuWeightMemory parse(String name) {
        return switch (name.toLowerCase(Locale.ROOT)) {
            case "mmap" -> MMAP;
            case "hugepages" -> HUGEPAGES;
            default -> throw new IllegalArgumentException("unknown CPU weight memory '" + name + "'; use mmap or hugepages");
        };
    }

    /** Zeroed memory for weights the backend derives at load (tiles, widened f16), owned by {@code arena}. */
    MemorySegment allocate(long bytes, Arena arena) {
        return switch (this) {
            case MMAP -> arena.allocate(bytes, 64);
            case HUGEPAGES -> HugePages.allocate(bytes, arena);
        };
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
        if (source.isMapped()) {
            HugePages.pageOut(source);
        }
    }
}
