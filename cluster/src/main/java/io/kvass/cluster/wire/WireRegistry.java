package io.kvass.cluster.wire;

import io.kvass.worker.wire.CrossNode;
import java.lang.reflect.GenericArrayType;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.RecordComponent;
import java.lang.reflect.Type;
import java.lang.reflect.WildcardType;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * Every class Kryo may meet on the wire, found from the protocols' roots: a root's permitted subtypes that
 * are {@link CrossNode}, and, transitively, the types of their record components (generic arguments
 * included). The walk is pure reflection, so a new message or a new field needs no registration by hand;
 * {@code CrossNodeRoundTripTest} proves that every {@code CrossNode} on the classpath is reached.
 */
public final class WireRegistry {
    private final Set<Class<?>> classes = new LinkedHashSet<>();

    private WireRegistry() {
    }

    /** The classes reachable from {@code roots}, in a deterministic order. */
    public static List<Class<?>> reachableFrom(List<Class<?>> roots) {
        WireRegistry r = new WireRegistry();
        roots.forEach(r::visitRoot);
        return List.copyOf(r.classes);
    }

    private void visitRoot(Class<?> root) {
        if (root.isSealed()) {
            for (Class<?> sub : root.getPermittedSubclasses()) {
                if (CrossNode.class.isAssignableFrom(sub)) {
                    visitRoot(sub);
                }
            }
            if (root.isInterface()) {
                return;
            }
        }
        visit(root);
    }

    private void visit(Type type) {
        switch (type) {
            case Class<?> c -> visitClass(c);
            case ParameterizedType p -> {
                visit(p.getRawType());
                for (Type arg : p.getActualTypeArguments()) {
                    visit(arg);
                }
            }
            case GenericArrayType a -> visit(a.getGenericComponentType());
            case WildcardType w -> {
                for (Type bound : w.getUpperBounds()) {
                    visit(bound);
                }
            }
            default -> { }
        }
    }

    private void visitClass(Class<?> c) {
        if (c.isPrimitive() || c == Object.class || !classes.add(c)) {
            return;
        }
        if (c.isArray()) {
            visit(c.getComponentType());
        } else if (c.isRecord()) {
            for (RecordComponent rc : c.getRecordComponents()) {
                visit(rc.getGenericType());
            }
        } else if (c.isSealed()) {
            List<Class<?>> subs = new ArrayList<>(List.of(c.getPermittedSubclasses()));
            subs.forEach(this::visit);
        }
    }
}
