package io.kvass.worker.model;

import java.util.Optional;

/** Where named weights come from: safetensors files or a llama2.c checkpoint. */
public interface WeightSource extends AutoCloseable {

    Optional<Tensor> find(String name);

    default Tensor get(String name) {
        return find(name).orElseThrow(() -> new ModelLoadException("missing tensor '" + name + "' in " + describe()));
    }

    /** Where the weights live, for error messages. */
    String describe();

    @Override
    void close();
}
