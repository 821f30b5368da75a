package io.kvass.cluster;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class MainTest {
    @Test
    void serveRefusesBadFlagsWithExitCode2() {
        assertEquals(2, Main.run(new String[] {"serve", "--model", "x", "--bogus"}));
        assertEquals(2, Main.run(new String[] {"serve"}));
        assertEquals(2, Main.run(new String[] {"frobnicate"}));
    }
}
