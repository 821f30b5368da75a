package io.kvass.cluster.placement;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PlacementTest {
    private static NodeInventory cpuNode(String address, int devices) {
        return new NodeInventory(address, java.util.stream.IntStream.range(0, devices)
                .mapToObj(i -> new Device(i, DeviceKind.CPU, "cpu", 0, 0)).toList());
    }

    private static NodeInventory gpuNode(String address, int gpus) {
        return new NodeInventory(address, java.util.stream.IntStream.range(0, gpus)
                .mapToObj(i -> new Device(i, DeviceKind.CUDA, "H100", 80L << 30, 79L << 30)).toList());
    }

    private static Deployment cpu(String name, int replicas) {
        return new Deployment(name, replicas, 1, DeviceKind.CPU, "{}");
    }

    @Test
    void twoReplicasOnThreeOneDeviceNodesLandOnTwoNodes() {
        var nodes = List.of(cpuNode("a", 1), cpuNode("b", 1), cpuNode("c", 1));
        var r = Placement.place(List.of(cpu("m", 2)), nodes, Map.of());
        assertEquals(2, r.assignments().size());
        assertNotEquals(r.assignments().get("m-0").node(), r.assignments().get("m-1").node());
        assertTrue(r.pending().isEmpty());
    }

    @Test
    void scalingUpUsesTheFreeNodeAndKeepsTheOthersWhereTheyAre() {
        var nodes = List.of(cpuNode("a", 1), cpuNode("b", 1), cpuNode("c", 1));
        var two = Placement.place(List.of(cpu("m", 2)), nodes, Map.of()).assignments();
        var three = Placement.place(List.of(cpu("m", 3)), nodes, two).assignments();
        assertEquals(two.get("m-0"), three.get("m-0"));
        assertEquals(two.get("m-1"), three.get("m-1"));
        Set<String> used = new HashSet<>();
        three.values().forEach(a -> used.add(a.node()));
        assertEquals(Set.of("a", "b", "c"), used);
    }

    @Test
    void scalingDownRemovesTheHighestIndices() {
        var nodes = List.of(cpuNode("a", 1), cpuNode("b", 1), cpuNode("c", 1));
        var three = Placement.place(List.of(cpu("m", 3)), nodes, Map.of()).assignments();
        var one = Placement.place(List.of(cpu("m", 1)), nodes, three).assignments();
        assertEquals(Set.of("m-0"), one.keySet());
        assertEquals(three.get("m-0"), one.get("m-0"));
    }

    @Test
    void aReplicaOfALostNodeMovesToAFreeOne() {
        var nodes = List.of(cpuNode("a", 1), cpuNode("b", 1), cpuNode("c", 1));
        var two = Placement.place(List.of(cpu("m", 2)), nodes, Map.of()).assignments();
        String lost = two.get("m-1").node();
        var left = nodes.stream().filter(n -> !n.address().equals(lost)).toList();
        var after = Placement.place(List.of(cpu("m", 2)), left, two).assignments();
        assertEquals(two.get("m-0"), after.get("m-0"));
        assertNotEquals(lost, after.get("m-1").node());
        assertNotEquals(after.get("m-0").node(), after.get("m-1").node());
    }

    @Test
    void neverTwoReplicasOnOneGpuAndPendingWhenFull() {
        var r = Placement.place(List.of(new Deployment("m", 3, 1, DeviceKind.CUDA, "{}")), List.of(gpuNode("a", 2)),
                Map.of());
        assertEquals(2, r.assignments().size());
        assertEquals(List.of("m-2"), r.pending());
        Set<Integer> gpus = new HashSet<>();
        r.assignments().values().forEach(a -> assertTrue(gpus.addAll(a.devices()), "GPU shared: " + a));
    }

    @Test
    void tensorParallelReplicasTakeNDevicesOfOneNode() {
        var nodes = List.of(gpuNode("a", 1), gpuNode("b", 4));
        var r = Placement.place(List.of(new Deployment("m", 2, 2, DeviceKind.CUDA, "{}")), nodes, Map.of());
        assertEquals(2, r.assignments().size());
        r.assignments().values().forEach(a -> {
            assertEquals("b", a.node());
            assertEquals(2, a.devices().size());
        });
        assertEquals(List.of(0, 1), r.assignments().get("m-0").devices());
        assertEquals(List.of(2, 3), r.assignments().get("m-1").devices());
    }

    @Test
    void cpuReplicasDoNotTakeGpusNorTheReverse() {
        var r = Placement.place(List.of(cpu("m", 1)), List.of(gpuNode("a", 2)), Map.of());
        assertEquals(List.of("m-0"), r.pending());
    }

    @Test
    void twoDeploymentsShareANodeOnSeparateDevices() {
        var r = Placement.place(List.of(cpu("m", 1), cpu("n", 1)), List.of(cpuNode("a", 2)), Map.of());
        assertEquals(2, r.assignments().size());
        assertNotEquals(r.assignments().get("m-0").devices(), r.assignments().get("n-0").devices());
    }
}
