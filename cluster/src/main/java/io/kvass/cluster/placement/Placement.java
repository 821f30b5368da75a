package io.kvass.cluster.placement;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.TreeMap;

/**
 * Decides where every replica runs, from the deployments, the nodes that may host replicas and where the
 * replicas run now. Pure: the coordinator applies the result.
 *
 * <p>Rules: a replica stays where it is while its node is eligible and its devices are still there (no
 * needless moves); replicas past a deployment's count go (the highest indices first, so scaling down
 * removes the newest); a replica needs {@code devicesPerReplica} free devices of its kind on one node and
 * never shares a device; new replicas spread: the node with the fewest replicas of that deployment first,
 * then the one with the most free devices, then by address. A replica that fits nowhere stays unplaced
 * (reported as pending) until a node with room appears.
 */
public final class Placement {
    private Placement() {
    }

    public record Result(Map<String, Assignment> assignments, List<String> pending) {
    }

    /**
     * @param eligible nodes that may host replicas now (up, worker role, not draining)
     * @param current  replica id -> where it runs now
     */
    public static Result place(List<Deployment> deployments, List<NodeInventory> eligible,
                               Map<String, Assignment> current) {
        Map<String, Deployment> byName = new TreeMap<>();
        deployments.forEach(d -> byName.put(d.name(), d));
        Map<String, NodeInventory> nodes = new TreeMap<>();
        eligible.forEach(n -> nodes.put(n.address(), n));
        Map<String, Set<Integer>> used = new HashMap<>();
        Map<String, Assignment> out = new TreeMap<>();

        for (Assignment a : new TreeMap<>(current).values()) {
            Deployment d = byName.get(a.deployment());
            NodeInventory node = nodes.get(a.node());
            if (d == null || a.index() >= d.replicas() || node == null || !stillFits(a, d, node, used)) {
                continue;
            }
            used.computeIfAbsent(a.node(), k -> new HashSet<>()).addAll(a.devices());
            out.put(a.replicaId(), a);
        }
        List<String> pending = new ArrayList<>();
        for (Deployment d : byName.values()) {
            for (int i = 0; i < d.replicas(); i++) {
                String id = d.replicaId(i);
                if (out.containsKey(id)) {
                    continue;
                }
                Optional<Assignment> a = choose(d, i, nodes.values(), used, out);
                a.ifPresentOrElse(x -> {
                    used.computeIfAbsent(x.node(), k -> new HashSet<>()).addAll(x.devices());
                    out.put(id, x);
                }, () -> pending.add(id));
            }
        }
        return new Result(out, pending);
    }

    private static boolean stillFits(Assignment a, Deployment d, NodeInventory node, Map<String, Set<Integer>> used) {
        Set<Integer> taken = used.getOrDefault(a.node(), Set.of());
        Set<Integer> offered = new HashSet<>();
        node.devicesOf(d.device()).forEach(dev -> offered.add(dev.index()));
        return a.devices().size() == d.devicesPerReplica() && offered.containsAll(a.devices())
                && a.devices().stream().noneMatch(taken::contains);
    }

    private static Optional<Assignment> choose(Deployment d, int index, Iterable<NodeInventory> nodes,
                                               Map<String, Set<Integer>> used, Map<String, Assignment> placed) {
        record Candidate(NodeInventory node, List<Integer> free, long sameDeployment) {
        }
        List<Candidate> candidates = new ArrayList<>();
        for (NodeInventory n : nodes) {
            Set<Integer> taken = used.getOrDefault(n.address(), Set.of());
            List<Integer> free = n.devicesOf(d.device()).stream().map(Device::index).filter(i -> !taken.contains(i))
                    .sorted().toList();
            if (free.size() >= d.devicesPerReplica()) {
                long same = placed.values().stream()
                        .filter(a -> a.node().equals(n.address()) && a.deployment().equals(d.name())).count();
                candidates.add(new Candidate(n, free, same));
            }
        }
        return candidates.stream()
                .min(Comparator.comparingLong(Candidate::sameDeployment)
                        .thenComparing(c -> -c.free().size())
                        .thenComparing(c -> c.node().address()))
                .map(c -> new Assignment(d.replicaId(index), d.name(), index, c.node().address(),
                        c.free().subList(0, d.devicesPerReplica())));
    }
}
