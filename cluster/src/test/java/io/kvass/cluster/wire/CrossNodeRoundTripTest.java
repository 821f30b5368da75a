package io.kvass.cluster.wire;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.typesafe.config.ConfigFactory;
import io.kvass.worker.wire.CrossNode;
import java.io.IOException;
import java.lang.reflect.Array;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Modifier;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.net.URISyntaxException;
import java.net.URL;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.OptionalDouble;
import java.util.OptionalInt;
import java.util.OptionalLong;
import java.util.Set;
import java.util.TreeSet;
import java.util.jar.JarFile;
import java.util.stream.Stream;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.ActorSystem;
import org.apache.pekko.actor.typed.javadsl.Adapter;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.serialization.Serialization;
import org.apache.pekko.serialization.SerializationExtension;
import org.apache.pekko.serialization.Serializer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Every {@link CrossNode} message on the classpath is registered and survives Pekko's serialization (our Kryo
 * serializer) unchanged, with Java serialization off: a new message cannot be forgotten. Instances are made
 * by reflection, one non-default value per component, so a field Kryo drops shows up as a difference.
 */
class CrossNodeRoundTripTest {
    private static ActorSystem<Void> system;
    private static ActorRef<Object> someRef;

    @BeforeAll
    static void start() {
        system = ActorSystem.create(Behaviors.empty(), "wire", ConfigFactory.parseString("""
                pekko.actor.provider = cluster
                pekko.remote.artery.canonical.hostname = 127.0.0.1
                pekko.remote.artery.canonical.port = 0
                """).withFallback(WireProtocol.PEKKO_CONFIG));
        someRef = system.systemActorOf(Behaviors.ignore(), "some-ref", org.apache.pekko.actor.typed.Props.empty());
    }

    @AfterAll
    static void stop() {
        system.terminate();
    }

    @Test
    void everyCrossNodeClassOnTheClasspathIsRegistered() throws Exception {
        Set<String> registered = new TreeSet<>();
        WireProtocol.classes().forEach(c -> registered.add(c.getName()));
        List<Class<?>> found = crossNodeClasses();
        assertTrue(found.size() >= 8, "expected the engine protocol at least, found " + found);
        for (Class<?> c : found) {
            assertTrue(registered.contains(c.getName()), c.getName() + " is CrossNode but no root of WireProtocol reaches it");
        }
    }

    @Test
    void everyRegisteredMessageRoundTripsThroughKryo() throws Exception {
        Serialization serialization = SerializationExtension.get(Adapter.toClassic(system));
        int checked = 0;
        for (Class<?> c : WireProtocol.classes()) {
            if (!CrossNode.class.isAssignableFrom(c) || c.isInterface()) {
                continue;
            }
            Object message = sample(c, 0);
            Serializer serializer = serialization.findSerializerFor(message);
            assertInstanceOf(KryoSerializer.class, serializer, c.getName());
            byte[] bytes = serializer.toBinary(message);
            Object back = serializer.fromBinary(bytes, c);
            assertTrue(deepEquals(message, back), c.getName() + ": " + message + " came back as " + back);
            checked++;
        }
        assertTrue(checked >= 8, "checked " + checked);
    }

    @Test
    void javaSerializationIsOff() {
        Serialization serialization = SerializationExtension.get(Adapter.toClassic(system));
        assertTrue(serialization.serialize(new java.util.Date()).isFailure(), "a java.io.Serializable crossed");
    }

    @Test
    void wireIdsDoNotCollide() {
        Map<Integer, String> ids = new java.util.HashMap<>();
        for (Class<?> c : WireProtocol.classes()) {
            String previous = ids.put(KryoSerializer.idOf(c), c.getName());
            assertTrue(previous == null || previous.equals(c.getName()), previous + " and " + c.getName());
        }
    }

    // ---- sample values by reflection ----

    private static Object sample(Type type, int depth) {
        if (depth > 8) {
            fail("recursive type too deep: " + type);
        }
        if (type instanceof ParameterizedType p) {
            Class<?> raw = (Class<?>) p.getRawType();
            Type[] args = p.getActualTypeArguments();
            if (List.class.isAssignableFrom(raw)) {
                return List.of(sample(args[0], depth + 1));
            }
            if (Set.class.isAssignableFrom(raw)) {
                return Set.of(sample(args[0], depth + 1));
            }
            if (Map.class.isAssignableFrom(raw)) {
                return Map.of(sample(args[0], depth + 1), sample(args[1], depth + 1));
            }
            if (raw == Optional.class) {
                return Optional.of(sample(args[0], depth + 1));
            }
            if (raw == ActorRef.class) {
                return someRef;
            }
            return sample(raw, depth);
        }
        if (type instanceof GenericArrayType g) {
            Class<?> component = (Class<?>) (g.getGenericComponentType() instanceof ParameterizedType p ? p.getRawType()
                    : g.getGenericComponentType());
            Object array = Array.newInstance(component, 1);
            Array.set(array, 0, sample(g.getGenericComponentType(), depth + 1));
            return array;
        }
        Class<?> c = (Class<?>) type;
        if (c == io.kvass.scheduler.core.Request.class) {
            // NOTE: a resumed request needs n = 1 and fewer resumed tokens than max_tokens
            return new io.kvass.scheduler.core.Request("r", new int[] {1, 2},
                    io.kvass.worker.sampling.SamplingParams.greedy(8).withSeed(3), new io.kvass.kvpaging.CacheScope(2, "s"),
                    1, 1, 2L, new int[] {5});
        }
        if (c == int.class || c == Integer.class) {
            return 1;
        }
        if (c == long.class || c == Long.class) {
            return 2L;
        }
        if (c == float.class || c == Float.class) {
            return 0.5f;
        }
        if (c == double.class || c == Double.class) {
            return 0.25;
        }
        if (c == boolean.class || c == Boolean.class) {
            return true;
        }
        if (c == byte.class) {
            return (byte) 3;
        }
        if (c == String.class || c == Object.class) {
            return "s";
        }
        if (c == OptionalInt.class) {
            return OptionalInt.of(1);
        }
        if (c == OptionalLong.class) {
            return OptionalLong.of(2);
        }
        if (c == OptionalDouble.class) {
            return OptionalDouble.of(0.25);
        }
        if (c == ActorRef.class) {
            return someRef;
        }
        if (c.isArray()) {
            Object array = Array.newInstance(c.getComponentType(), 1);
            Array.set(array, 0, sample(c.getComponentType(), depth + 1));
            return array;
        }
        if (c.isEnum()) {
            return c.getEnumConstants()[c.getEnumConstants().length - 1];
        }
        if (c == io.kvass.scheduler.engine.IterationTokens.class) {
            var recorder = new io.kvass.scheduler.engine.IterationTokens.Recorder(); // one count per bucket
            recorder.record(3);
            recorder.record(100_000);
            return recorder.snapshot();
        }
        if (c.isRecord()) {
            RecordComponent[] rcs = c.getRecordComponents();
            Object[] values = new Object[rcs.length];
            Class<?>[] types = new Class<?>[rcs.length];
            for (int i = 0; i < rcs.length; i++) {
                values[i] = sample(rcs[i].getGenericType(), depth + 1);
                types[i] = rcs[i].getType();
            }
            try {
                var ctor = c.getDeclaredConstructor(types);
                ctor.setAccessible(true);
                return ctor.newInstance(values);
            } catch (InvocationTargetException e) {
                throw new AssertionError(c.getName() + " rejects the sample values: " + e.getCause().getMessage()
                        + " (teach sample() a valid value)", e.getCause());
            } catch (ReflectiveOperationException e) {
                throw new AssertionError(c.getName(), e);
            }
        }
        if (c.isSealed()) {
            for (Class<?> sub : c.getPermittedSubclasses()) {
                if (sub.isRecord() || sub.isEnum()) {
                    return sample(sub, depth + 1);
                }
            }
        }
        throw new AssertionError("no sample value for " + c.getName() + ": cross-node messages carry records, "
                + "enums, primitives, strings, arrays, lists, sets, maps, optionals and actor refs");
    }

    private static boolean deepEquals(Object a, Object b) {
        if (a == null || b == null) {
            return a == b;
        }
        if (a.getClass().isArray()) {
            if (!b.getClass().isArray() || Array.getLength(a) != Array.getLength(b)) {
                return false;
            }
            for (int i = 0; i < Array.getLength(a); i++) {
                if (!deepEquals(Array.get(a, i), Array.get(b, i))) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof List<?> la && b instanceof List<?> lb) {
            if (la.size() != lb.size()) {
                return false;
            }
            for (int i = 0; i < la.size(); i++) {
                if (!deepEquals(la.get(i), lb.get(i))) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof Optional<?> oa && b instanceof Optional<?> ob) {
            return oa.isPresent() == ob.isPresent() && (oa.isEmpty() || deepEquals(oa.get(), ob.get()));
        }
        if (a.getClass().isRecord() && a.getClass() == b.getClass()) {
            for (RecordComponent rc : a.getClass().getRecordComponents()) {
                try {
                    var accessor = rc.getAccessor();
                    accessor.setAccessible(true);
                    if (!deepEquals(accessor.invoke(a), accessor.invoke(b))) {
                        return false;
                    }
                } catch (ReflectiveOperationException e) {
                    throw new AssertionError(e);
                }
            }
            return true;
        }
        return a.equals(b);
    }

    // ---- the classpath scan ----

    /** Every concrete {@code io.kvass} class implementing CrossNode, in directories and jars of the classpath. */
    private static List<Class<?>> crossNodeClasses() throws IOException, URISyntaxException {
        List<String> names = new ArrayList<>();
        for (URL url : Collections.list(CrossNodeRoundTripTest.class.getClassLoader().getResources("io/kvass"))) {
            if (url.getProtocol().equals("file")) {
                Path root = Path.of(url.toURI()).getParent().getParent();
                try (Stream<Path> files = Files.walk(root.resolve("io/kvass"))) {
                    files.filter(f -> f.toString().endsWith(".class"))
                            .forEach(f -> names.add(className(root.relativize(f).toString())));
                }
            } else if (url.getProtocol().equals("jar")) {
                String jar = url.getPath().substring("file:".length(), url.getPath().indexOf('!'));
                try (JarFile file = new JarFile(jar)) {
                    file.stream().map(e -> e.getName())
                            .filter(n -> n.startsWith("io/kvass/") && n.endsWith(".class"))
                            .forEach(n -> names.add(className(n)));
                }
            }
        }
        List<Class<?>> out = new ArrayList<>();
        for (String name : new TreeSet<>(names)) {
            try {
                Class<?> c = Class.forName(name, false, CrossNodeRoundTripTest.class.getClassLoader());
                if (CrossNode.class.isAssignableFrom(c) && !c.isInterface() && !Modifier.isAbstract(c.getModifiers())) {
                    out.add(c);
                }
            } catch (ClassNotFoundException | LinkageError e) {
                // a class whose dependencies are absent here (e.g. native bindings) cannot be a message
            }
        }
        return out;
    }

    private static String className(String path) {
        return path.substring(0, path.length() - ".class".length()).replace('/', '.').replace('\\', '.');
    }
}
