package io.kvass.worker.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemAllocHost;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemFreeHost;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoHAsync;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import io.kvass.worker.model.ModelLoadException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * One GPU through JCuda's driver API: its primary context (the one the CUDA runtime, and so cuBLAS
 * and NCCL through JavaCPP, also use), one stream, device and pinned host memory. Every method makes
 * the context current on the calling thread first, so the backend may be driven from any thread
 * (one at a time).
 */
final class CudaDevice implements AutoCloseable {
    private static volatile Optional<String> unavailable;

    final int ordinal;
    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final Stream stream = new Stream();
    private final List<DeviceBuffer> buffers = new ArrayList<>();
    private final List<Pointer> hostBuffers = new ArrayList<>();
    final String name;
    final int multiprocessors;
    final int computeCapability;

    /** JCuda keeps a stream's handle in a protected field; cuBLAS and NCCL need it as a raw address. */
    static final class Stream extends CUstream {
        long handle() {
            return getNativePointer();
        }
    }

    /** Reads the address JCuda keeps in a protected field of an allocated pointer. */
    static final class AllocatedPointer extends jcuda.driver.CUdeviceptr {
        long address() {
            return getNativePointer();
        }
    }

    CudaDevice(int ordinal) {
        availability().ifPresent(reason -> {
            throw new ModelLoadException("--device cuda: " + reason);
        });
        this.ordinal = ordinal;
        int[] count = new int[1];
        cuDeviceGetCount(count);
        if (ordinal < 0 || ordinal >= count[0]) {
            throw new ModelLoadException("--device cuda: GPU " + ordinal + " requested, " + count[0] + " present");
        }
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        cuStreamCreate(stream, 1 /* CU_STREAM_NON_BLOCKING */);
        byte[] nameBytes = new byte[256];
        cuDeviceGetName(nameBytes, nameBytes.length, device);
        this.name = new String(nameBytes).trim().replace("\0", "");
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.computeCapability = 10 * attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        if (computeCapability < 80) {
            throw new ModelLoadException("--device cuda: " + name + " (compute capability " + computeCapability / 10 + "."
                    + computeCapability % 10 + ") is too old; kvass's kernels need 8.0 (Ampere) or newer for bf16");
        }
    }

    /**
     * Empty when a CUDA GPU can be used here; otherwise why not (no driver library, no device).
     * Probed once: a failed JCuda load is not retried.
     */
    static Optional<String> availability() {
        Optional<String> known = unavailable;
        if (known == null) {
            synchronized (CudaDevice.class) {
                if (unavailable == null) {
                    unavailable = probe();
                }
                known = unavailable;
            }
        }
        return known;
    }

    private static Optional<String> probe() {
        try {
            JCudaDriver.setExceptionsEnabled(true);
            cuInit(0);
            int[] count = new int[1];
            cuDeviceGetCount(count);
            return count[0] == 0 ? Optional.of("no CUDA GPU is visible (cuDeviceGetCount = 0)") : Optional.empty();
        } catch (UnsatisfiedLinkError | NoClassDefFoundError e) {
            return Optional.of("no CUDA driver on this machine (" + e.getMessage() + ")");
        } catch (CudaException e) {
            return Optional.of("CUDA driver present but unusable: " + e.getMessage());
        }
    }

    void makeCurrent() {
        cuCtxSetCurrent(context);
    }

    Stream stream() {
        return stream;
    }

    private int attribute(int attribute) {
        int[] value = new int[1];
        cuDeviceGetAttribute(value, attribute, device);
        return value[0];
    }

    /** {free, total} bytes of device memory. */
    long[] memoryInfo() {
        makeCurrent();
        long[] free = new long[1];
        long[] total = new long[1];
        cuMemGetInfo(free, total);
        return new long[] {free[0], total[0]};
    }

    /** Device memory that lives until {@link #close()}; out-of-memory says how much was asked and what is free. */
    DeviceBuffer allocate(long bytes, String what) {
        makeCurrent();
        AllocatedPointer ptr = new AllocatedPointer();
        try {
            cuMemAlloc(ptr, Math.max(bytes, 16));
        } catch (CudaException e) {
            if (e.getMessage() != null && e.getMessage().contains(CUresult.stringFor(CUresult.CUDA_ERROR_OUT_OF_MEMORY))) {
                long[] info = memoryInfo();
                throw new ModelLoadException(String.format("GPU %d (%s) out of memory allocating %s: %.2f GiB asked, "
                        + "%.2f GiB free of %.2f GiB", ordinal, name, what, gib(bytes), gib(info[0]), gib(info[1])), e);
            }
            throw e;
        }
        DeviceBuffer buffer = new DeviceBuffer(ptr, ptr.address(), bytes);
        buffers.add(buffer);
        return buffer;
    }

    /** Pinned host memory (for asynchronous copies), little-endian, valid until {@link #close()}. */
    ByteBuffer allocateHost(long bytes) {
        makeCurrent();
        Pointer p = new Pointer();
        cuMemAllocHost(p, bytes);
        hostBuffers.add(p);
        return p.getByteBuffer(0, bytes).order(ByteOrder.LITTLE_ENDIAN);
    }

    void upload(DeviceBuffer dst, long dstOffset, ByteBuffer src, long bytes) {
        cuMemcpyHtoDAsync(dst.at(dstOffset), Pointer.to(src), bytes, stream);
    }

    void download(ByteBuffer dst, DeviceBuffer src, long srcOffset, long bytes) {
        cuMemcpyDtoHAsync(Pointer.to(dst), src.at(srcOffset), bytes, stream);
    }

    void zero(DeviceBuffer buffer) {
        cuMemsetD8Async(buffer.at(0), (byte) 0, buffer.bytes(), stream);
    }

    void synchronize() {
        cuStreamSynchronize(stream);
    }

    static double gib(long bytes) {
        return bytes / (double) (1L << 30);
    }

    @Override
    public void close() {
        makeCurrent();
        cuStreamSynchronize(stream);
        for (DeviceBuffer b : buffers) {
            cuMemFree(b.pointer());
        }
        buffers.clear();
        for (Pointer p : hostBuffers) {
            cuMemFreeHost(p);
        }
        hostBuffers.clear();
        cuStreamDestroy(stream);
        cuDevicePrimaryCtxRelease(device);
    }
}
