package io.kvass.cluster.wire;

import com.esotericsoftware.kryo.Kryo;
import com.esotericsoftware.kryo.Serializer;
import com.esotericsoftware.kryo.io.Input;
import com.esotericsoftware.kryo.io.Output;
import com.esotericsoftware.kryo.serializers.ImmutableCollectionsSerializers;
import com.esotericsoftware.kryo.util.Pool;
import java.lang.reflect.Modifier;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.zip.CRC32;
import org.apache.pekko.actor.ExtendedActorSystem;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorRefResolver;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.serialization.JSerializer;

/**
 * Pekko's serializer for every {@link io.kvass.worker.wire.CrossNode} message: Kryo 5 with a pool of
 * instances, registration required, over the classes of {@link WireProtocol#classes()}.
 *
 * <p>NOTE: a class's registration id is derived from its name (not from its position in a list), so adding a
 * message elsewhere does not renumber the others; a collision fails at start, and the round-trip test proves
 * there is none.
 */
public final class KryoSerializer extends JSerializer {
    /** Pekko reserves 0-40 for its own serializers. */
    public static final int IDENTIFIER = 7_164_220;
    private static final int FIRST_ID = 1_000;

    private final Pool<Kryo> pool;

    public KryoSerializer(ExtendedActorSystem system) {
        ActorRefResolver resolver = ActorRefResolver.get(Adapter.toTyped(system));
        List<Class<?>> classes = WireProtocol.classes();
        this.pool = new Pool<>(true, false, 16) {
            @Override
            protected Kryo create() {
                return newKryo(resolver, classes);
            }
        };
        pool.free(pool.obtain()); // fail at start, not at the first message, if the registry is broken
    }

    static Kryo newKryo(ActorRefResolver resolver, List<Class<?>> classes) {
        Kryo kryo = new Kryo();
        kryo.setRegistrationRequired(true);
        kryo.setReferences(false);
        ImmutableCollectionsSerializers.addDefaultSerializers(kryo);
        Map<Integer, Class<?>> taken = new HashMap<>();
        for (Class<?> c : jdkClasses()) {
            register(kryo, c, taken);
        }
        for (Class<?> c : classes) {
            if (c.isArray() || c.isEnum() || c.isRecord() || !(c.isInterface() || Modifier.isAbstract(c.getModifiers()))) {
                register(kryo, c, taken);
            }
        }
        kryo.addDefaultSerializer(ActorRef.class, new ActorRefSerializer(resolver));
        for (Class<?> c : actorRefClasses()) {
            register(kryo, c, taken);
        }
        return kryo;
    }

    private static void register(Kryo kryo, Class<?> c, Map<Integer, Class<?>> taken) {
        if (c.isPrimitive() || c == String.class || c == Integer.class || c == Long.class || c == Boolean.class
                || c == Float.class || c == Double.class || c == Short.class || c == Byte.class || c == Character.class
                || c == void.class || c == Void.class) {
            return; // Kryo pre-registers these
        }
        int id = idOf(c);
        Class<?> previous = taken.putIfAbsent(id, c);
        if (previous != null && previous != c) {
            throw new IllegalStateException("wire ids of " + previous.getName() + " and " + c.getName() + " collide");
        }
        if (previous == null) {
            kryo.register(c, id);
        }
    }

    static int idOf(Class<?> c) {
        CRC32 crc = new CRC32();
        crc.update(c.getName().getBytes(StandardCharsets.UTF_8));
        return FIRST_ID + (int) (crc.getValue() & 0x3FFF_FFFF);
    }

    /** Containers the records use, including the JDK's immutable ones ({@code List.of}, {@code Set.copyOf}). */
    private static List<Class<?>> jdkClasses() {
        List<Class<?>> out = new ArrayList<>(List.of(ArrayList.class, HashMap.class, LinkedHashMap.class, TreeMap.class,
                HashSet.class, LinkedHashSet.class, TreeSet.class, Optional.class, OptionalInt.class, OptionalLong.class,
                OptionalDouble.class, int[].class, long[].class, float[].class, double[].class, byte[].class,
                boolean[].class, String[].class));
        out.addAll(List.of(List.of().getClass(), List.of(1).getClass(), List.of(1, 2, 3).getClass(),
                Set.of().getClass(), Set.of(1).getClass(), Set.of(1, 2, 3).getClass(),
                Map.of().getClass(), Map.of(1, 1).getClass(), Map.of(1, 1, 2, 2).getClass(),
                List.of(1, 2, 3).subList(0, 1).getClass(), java.util.Collections.emptyList().getClass(),
                java.util.Collections.unmodifiableList(new ArrayList<>()).getClass(),
                java.util.Collections.unmodifiableMap(new HashMap<>()).getClass(),
                java.util.Collections.unmodifiableSet(new HashSet<>()).getClass()));
        return out;
    }

    /** The concrete classes a typed ActorRef has in a running system (local, remote, adapters). */
    private static List<Class<?>> actorRefClasses() {
        List<Class<?>> out = new ArrayList<>();
        for (String name : List.of("org.apache.pekko.actor.typed.internal.adapter.ActorRefAdapter")) {
            try {
                out.add(Class.forName(name));
            } catch (ClassNotFoundException e) {
                throw new IllegalStateException("Pekko without " + name, e);
            }
        }
        return out;
    }

    @Override
    public int identifier() {
        return IDENTIFIER;
    }

    @Override
    public boolean includeManifest() {
        return false;
    }

    @Override
    public byte[] toBinary(Object o) {
        Kryo kryo = pool.obtain();
        try (Output out = new Output(256, -1)) {
            kryo.writeClassAndObject(out, o);
            return out.toBytes();
        } finally {
            pool.free(kryo);
        }
    }

    @Override
    public Object fromBinaryJava(byte[] bytes, Class<?> manifest) {
        Kryo kryo = pool.obtain();
        try (Input in = new Input(bytes)) {
            return kryo.readClassAndObject(in);
        } finally {
            pool.free(kryo);
        }
    }

    /** A typed ActorRef travels as its serialization format (address and path) and resolves on arrival. */
    private static final class ActorRefSerializer extends Serializer<ActorRef<?>> {
        private final ActorRefResolver resolver;

        ActorRefSerializer(ActorRefResolver resolver) {
            super(false, true);
            this.resolver = resolver;
        }

        @Override
        public void write(Kryo kryo, Output output, ActorRef<?> ref) {
            output.writeString(resolver.toSerializationFormat(ref));
        }

        @Override
        public ActorRef<?> read(Kryo kryo, Input input, Class<? extends ActorRef<?>> type) {
            return resolver.resolveActorRef(input.readString());
        }
    }
}
