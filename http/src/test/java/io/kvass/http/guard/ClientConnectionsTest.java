package io.kvass.http.guard;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.kvass.http.guard.ClientConnections.Admission;
import java.net.InetAddress;
import org.junit.jupiter.api.Test;

class ClientConnectionsTest {
    private static InetAddress ip(String a) throws Exception {
        return InetAddress.getByName(a);
    }

    @Test
    void eachAddressHasItsOwnCapAndAllShareTheTotal() throws Exception {
        ClientConnections c = new ClientConnections(5, 2);
        assertEquals(Admission.ADMITTED, c.acquire(ip("10.0.0.1")));
        assertEquals(Admission.ADMITTED, c.acquire(ip("10.0.0.1")));
        assertEquals(Admission.CLIENT_FULL, c.acquire(ip("10.0.0.1")));
        assertEquals(Admission.ADMITTED, c.acquire(ip("10.0.0.2")));
        assertEquals(Admission.ADMITTED, c.acquire(ip("10.0.0.2")));
        assertEquals(Admission.ADMITTED, c.acquire(ip("10.0.0.3")));
        assertEquals(Admission.SERVER_FULL, c.acquire(ip("10.0.0.4")));
        assertEquals(5, c.total());
        c.release(ip("10.0.0.1"));
        assertEquals(1, c.open(ip("10.0.0.1")));
        assertEquals(Admission.ADMITTED, c.acquire(ip("10.0.0.4")));
        assertEquals(Admission.SERVER_FULL, c.acquire(ip("10.0.0.1")));
    }

    @Test
    void releasingEverythingForgetsTheAddresses() throws Exception {
        ClientConnections c = new ClientConnections(10, 10);
        c.acquire(ip("10.0.0.1"));
        c.release(ip("10.0.0.1"));
        assertEquals(0, c.open(ip("10.0.0.1")));
        assertEquals(0, c.total());
        assertThrows(IllegalStateException.class, () -> c.release(ip("10.0.0.1")));
    }
}
