package io.kvass.worker.cuda;

import static org.bytedeco.cuda.global.cudart.CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
import static org.bytedeco.cuda.global.cudart.cuLaunchKernelEx;

import java.lang.reflect.Method;
import jcuda.NativePointerObject;
import jcuda.driver.CUfunction;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUlaunchAttribute;
import org.bytedeco.cuda.cudart.CUlaunchConfig;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.IntPointer;
import org.bytedeco.javacpp.LongPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;

/**
 * Kernel launches with programmatic dependent launch (Hopper): the kernel may begin while the one
 * before it in the stream finishes, and waits (griddepcontrol.wait) only where it reads that kernel's
 * output. JCuda 12.6 has no {@code cuLaunchKernelEx}, so this goes through JavaCPP's driver bindings
 * with JCuda's function handle and kvass's stream as raw addresses (as cuBLAS does, see {@link CuBlas}).
 */
final class DependentLaunch {
    private static final Method NATIVE_POINTER;

    static {
        try {
            NATIVE_POINTER = NativePointerObject.class.getDeclaredMethod("getNativePointer");
            NATIVE_POINTER.setAccessible(true);
        } catch (ReflectiveOperationException e) {
            throw new ExceptionInInitializerError(e);
        }
    }

    private DependentLaunch() {
    }

    /** Kernel arguments by value as for {@code CudaKernels}: Long (addresses), Integer, Float. */
    static void launch(CUfunction function, int gx, int gy, int gz, int block, int sharedBytes, CudaDevice device,
                       Object... values) {
        try (PointerPointer<Pointer> params = new PointerPointer<>(values.length);
             CUlaunchConfig config = new CUlaunchConfig();
             CUlaunchAttribute attribute = new CUlaunchAttribute()) {
            Pointer[] held = new Pointer[values.length];
            for (int i = 0; i < values.length; i++) {
                held[i] = switch (values[i]) {
                    case Long l -> new LongPointer(1).put(l);
                    case Integer n -> new IntPointer(1).put(n);
                    case Float f -> new FloatPointer(1).put(f);
                    default -> throw new IllegalArgumentException("kernel argument of type " + values[i].getClass());
                };
                params.put(i, held[i]);
            }
            attribute.id(CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION);
            attribute.value().programmaticStreamSerializationAllowed(1);
            config.gridDimX(gx).gridDimY(gy).gridDimZ(gz).blockDimX(block).blockDimY(1).blockDimZ(1)
                    .sharedMemBytes(sharedBytes).hStream(new CUstream_st(CuBlas.raw(device.stream().handle())))
                    .attrs(attribute).numAttrs(1);
            int status = cuLaunchKernelEx(config, new CUfunc_st(CuBlas.raw(handle(function))), params, (PointerPointer<?>) null);
            for (Pointer p : held) {
                p.close();
            }
            if (status != 0) {
                throw new IllegalStateException("cuLaunchKernelEx failed with CUresult " + status);
            }
        }
    }

    private static long handle(CUfunction function) {
        try {
            return (long) NATIVE_POINTER.invoke(function);
        } catch (ReflectiveOperationException e) {
            throw new IllegalStateException("cannot read JCuda's function handle", e);
        }
    }
}
