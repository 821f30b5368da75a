/** kvass worker module. */
package io.kvass.worker;
