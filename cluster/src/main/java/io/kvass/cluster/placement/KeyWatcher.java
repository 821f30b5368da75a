package io.kvass.cluster.placement;

import java.util.Map;
import java.util.function.Function;
import org.apache.pekko.actor.typed.ActorRef;
import org.apache.pekko.actor.typed.Behavior;
import org.apache.pekko.actor.typed.javadsl.Behaviors;
import org.apache.pekko.cluster.ddata.Key;
import org.apache.pekko.cluster.ddata.LWWMap;
import org.apache.pekko.cluster.ddata.typed.javadsl.DistributedData;
import org.apache.pekko.cluster.ddata.typed.javadsl.Replicator;
import org.apache.pekko.cluster.ddata.typed.javadsl.ReplicatorMessageAdapter;

/**
 * Forwards every change of one replicated map to its parent, as the parent's own message.
 *
 * <p>NOTE: a child per key because an actor keeps one message adapter per message class: two subscriptions
 * of one actor would share one adapter for {@code Replicator.Changed} and mix up their keys.
 */
final class KeyWatcher {
    private KeyWatcher() {
    }

    static <V, T> Behavior<Replicator.SubscribeResponse<LWWMap<String, V>>> create(Key<LWWMap<String, V>> key,
            ActorRef<T> parent, Function<Map<String, V>, T> wrap) {
        return Behaviors.setup(ctx -> DistributedData.withReplicatorMessageAdapter(
                (ReplicatorMessageAdapter<Replicator.SubscribeResponse<LWWMap<String, V>>, LWWMap<String, V>> data) -> {
                    data.subscribe(key, rsp -> rsp);
                    return Behaviors.receiveMessage(rsp -> {
                        if (rsp instanceof Replicator.Changed<LWWMap<String, V>> changed) {
                            parent.tell(wrap.apply(Map.copyOf(changed.get(key).getEntries())));
                        }
                        return Behaviors.same();
                    });
                }));
    }
}
