package io.kvass.worker.lora;

/**
 * One adapter as an operator sees it ({@code /admin/adapters}).
 *
 * @param slot     its backend slot while {@link AdapterTier#DEVICE}, else 0
 * @param inFlight requests submitted and not yet finished
 * @param running  sequences in the running batch (they pin the slot)
 * @param draining being unloaded: new requests are refused, running ones finish
 */
public record AdapterStatus(AdapterSpec spec, AdapterTier tier, int slot, int inFlight, int running, boolean draining) {
}
