/** kvass scheduler module. */
package io.kvass.scheduler;
