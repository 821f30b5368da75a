package io.kvass.worker.cpu;

import io.kvass.worker.model.ModelLoadException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;

/**
 * Linux anonymous memory backed by transparent huge pages (2 MB), through libc's {@code mmap} and
 * {@code madvise}. NOTE: with THP set to {@code madvise} (the usual default) a region gets huge pages only
 * when asked with {@code MADV_HUGEPAGE} before it is touched, and only the 2 MB-aligned parts of it.
 */
final class HugePages {
    /** Whether this is the OS whose libc calls and flag values this class uses. */
    static final boolean LINUX = System.getProperty("os.name").equals("Linux");
    /** The x86-64 PMD page; the alignment that lets every 2 MB of a region be one huge page. */
    static final long SIZE = 2L << 20;
    private static final long SMALL_PAGE = 4096;
    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_PAGEOUT = 21;
    private static final long MAP_FAILED = -1;

    private HugePages() {
    }

    /** The libc calls, looked up on first use only, so that reading {@link #LINUX} needs no libc. */
    private static final class Libc {
        private static final Linker LINKER = Linker.nativeLinker();
        static final MethodHandle MMAP = find("mmap", FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS,
                ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
        static final MethodHandle MUNMAP = find("munmap",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
        static final MethodHandle MADVISE = find("madvise",
                FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));

        private static MethodHandle find(String name, FunctionDescriptor descriptor) {
            return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(), descriptor);
        }
    }

    /**
     * {@code bytes} of zeroed memory starting on a 2 MB boundary, asked to be backed by huge pages, and
     * unmapped when {@code owner} closes.
     */
    static MemorySegment allocate(long bytes, Arena owner) {
        if (!LINUX) {
            throw new ModelLoadException("huge-page weights need Linux; use --cpu-weights mmap");
        }
        long length = bytes + SIZE; // room to start on a 2 MB boundary
        MemorySegment base = mmap(length);
        long start = (base.address() + SIZE - 1) & -SIZE;
        MemorySegment region = MemorySegment.ofAddress(start).reinterpret(bytes, owner, s -> munmap(base, length));
        // NOTE: a kernel without transparent huge pages refuses the advice and the region keeps 4 KB pages;
        // anonymous memory still streamed faster than the file mapping here, so that is not an error.
        madvise(region, MADV_HUGEPAGE);
        return region;
    }

    /**
     * Asks the kernel to drop the pages of a mapped file range from memory now rather than when memory runs
     * short: the caller has its own copy. Pages that other processes map stay; a kernel without
     * {@code MADV_PAGEOUT} (before 5.4) just keeps them.
     */
    static void pageOut(MemorySegment mapped) {
        long start = (mapped.address() + SMALL_PAGE - 1) & -SMALL_PAGE; // whole pages inside the range only
        long end = (mapped.address() + mapped.byteSize()) & -SMALL_PAGE;
        if (end > start) {
            madvise(MemorySegment.ofAddress(start).reinterpret(end - start), MADV_PAGEOUT);
        }
    }

    private static MemorySegment mmap(long length) {
        MemorySegment p;
        try {
            p = (MemorySegment) Libc.MMAP.invokeExact(MemorySegment.NULL, length, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0L);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (p.address() == MAP_FAILED) {
            throw new ModelLoadException("mmap of " + length + " bytes of anonymous memory for the weights failed");
        }
        return p;
    }

    private static void munmap(MemorySegment base, long length) {
        int rc;
        try {
            rc = (int) Libc.MUNMAP.invokeExact(base, length);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (rc != 0) {
            throw new IllegalStateException("munmap of " + length + " bytes of weights failed");
        }
    }

    /** Advice only: a kernel that refuses it changes no result, so its answer is not checked. */
    private static void madvise(MemorySegment region, int advice) {
        try {
            int ignored = (int) Libc.MADVISE.invokeExact(region, region.byteSize(), advice);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }
}
