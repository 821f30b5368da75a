package io.kvass.scheduler.core;

public enum SequenceStatus {
    WAITING, RUNNING, FINISHED
}
