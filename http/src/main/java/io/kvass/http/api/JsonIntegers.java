package io.kvass.http.api;

import com.fasterxml.jackson.databind.JsonNode;
import java.math.BigDecimal;
import java.math.BigInteger;

/**
 * Reads JSON integers exactly. Jackson hands out any integer as a {@code long} (and a 2^64 + 403
 * wraps to 403), so every integer a request carries goes through here: the value is compared with its
 * range as the exact number the client wrote, and the error names it as written.
 */
public final class JsonIntegers {
    /** Decimals that are whole numbers (1.0, 4e2) count as integers, as Python's json does for vLLM's ints. */
    private static final BigDecimal DECIMAL_LIMIT = BigDecimal.valueOf(1L << 53);

    private JsonIntegers() {
    }

    /**
     * {@code v} as a long in [{@code min}, {@code max}]; a 400 naming {@code field} when it is no
     * integer, or an integer outside the range (stated exactly, never wrapped).
     */
    public static long exact(String field, JsonNode v, long min, long max) {
        BigInteger value = integer(field, v);
        if (value.compareTo(BigInteger.valueOf(min)) < 0 || value.compareTo(BigInteger.valueOf(max)) > 0) {
            throw ApiError.invalid("Invalid value for '" + field + "': " + value + " is out of range ["
                    + min + ", " + max + "].", field);
        }
        return value.longValueExact();
    }

    /** {@code v} as the exact integer it is; a 400 naming {@code field} when it is not one. */
    public static BigInteger integer(String field, JsonNode v) {
        if (v.isIntegralNumber()) {
            return v.bigIntegerValue();
        }
        if (v.isFloatingPointNumber()) {
            double d = v.doubleValue();
            // NOTE: a double only holds whole numbers exactly up to 2^53; beyond, "1e300" is not an integer the
            // client can mean exactly, so it is refused like any decimal.
            if (Double.isFinite(d) && d == Math.rint(d) && Math.abs(d) < DECIMAL_LIMIT.doubleValue()) {
                return BigInteger.valueOf((long) d);
            }
        }
        throw JsonRequest.wrongType(field, "an integer", v);
    }
}
