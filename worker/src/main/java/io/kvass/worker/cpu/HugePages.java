package io.kvass.worker.cpu;

import io.kvass.worker.model.ModelLoadException;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Linux anonymous memory backed by transparent huge pages (2 MB), through libc's {@code mmap} and
 * {@code madvise}. NOTE: with THP set to {@code madvise} (the usual default) a region gets huge pages only
 * when asked with {@code MADV_HUGEPAGE} before it is touched, and only the 2 MB-aligned parts of it.
 */
final class HugePages {
    /** The x86-64 PMD page; the alignment that lets every 2 MB of a region be one huge page. */
    static final long SIZE = 2L << 20;
    private static final long SMALL_PAGE = 4096;
    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_PAGEOUT = 21;
    private static final long MAP_FAILED = -1;

    private static final Linker LINKER = Linker.nativeLinker();
    private static final MethodHandle MMAP = libc("mmap", FunctionDescriptor.of(ValueLayout.ADDRESS, ValueLayout.ADDRESS,
            ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
    private static final MethodHandle MUNMAP = libc("munmap",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
    private static final MethodHandle MADVISE = libc("madvise",
            FunctionDescriptor.of(ValueLayout.JAVA_INT, ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));

    private HugePages() {
    }

    /**
     * {@code bytes} of zeroed memory starting on a 2 MB boundary, asked to be backed by huge pages, and
     * unmapped when {@code owner} closes.
     */
    static MemorySegment allocate(long bytes, Arena owner) {
        if (!System.getProperty("os.name").equals("Linux")) {
            throw new ModelLoadException("huge-page weights need Linux; use --cpu-weights mmap");
        }
        long length = bytes + SIZE; // room to start on a 2 MB boundary
        MemorySegment base = mmap(length);
        long start = (base.address() + SIZE - 1) & -SIZE;
        MemorySegment region = MemorySegment.ofAddress(start).reinterpret(bytes, owner, s -> munmap(base, length));
        if (madvise(region, MADV_HUGEPAGE) != 0) {
            throw new ModelLoadException("madvise(MADV_HUGEPAGE) failed: this kernel has no transparent huge pages;"
                    + " use --cpu-weights mmap");
        }
        return region;
    }

    /**
     * Asks the kernel to drop the pages of a mapped file range from memory now rather than when memory runs
     * short: the caller has its own copy. Pages that other processes map stay. A kernel without
     * {@code MADV_PAGEOUT} (before 5.4) just keeps them, so the result is not checked.
     */
    static void pageOut(MemorySegment mapped) {
        long start = (mapped.address() + SMALL_PAGE - 1) & -SMALL_PAGE; // whole pages inside the range only
        long end = (mapped.address() + mapped.byteSize()) & -SMALL_PAGE;
        if (end > start) {
            madvise(MemorySegment.ofAddress(start).reinterpret(end - start), MADV_PAGEOUT);
        }
    }

    /** This process's anonymous memory in huge pages ({@code AnonHugePages} of /proc/self/smaps_rollup); 0 if unknown. */
    static long processBytes() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/smaps_rollup"))) {
                if (line.startsWith("AnonHugePages:")) {
                    return Long.parseLong(line.replaceAll("\\D", "")) * 1024;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return 0;
        }
        return 0;
    }

    private static MemorySegment mmap(long length) {
        MemorySegment p;
        try {
            p = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, length, PROT_READ_WRITE, MAP_PRIVATE_ANONYMOUS, -1, 0L);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
        if (p.address() == MAP_FAILED) {
            throw new ModelLoadException("mmap of " + length + " bytes of anonymous memory for the weights failed");
        }
        return p;
    }

    private static void munmap(MemorySegment base, long length) {
        try {
            int rc = (int) MUNMAP.invokeExact(base, length);
            assert rc == 0 : "munmap failed";
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static int madvise(MemorySegment region, int advice) {
        try {
            return (int) MADVISE.invokeExact(region, region.byteSize(), advice);
        } catch (Throwable t) {
            throw new IllegalStateException(t);
        }
    }

    private static MethodHandle libc(String name, FunctionDescriptor descriptor) {
        return LINKER.downcallHandle(LINKER.defaultLookup().find(name).orElseThrow(), descriptor);
    }
}
