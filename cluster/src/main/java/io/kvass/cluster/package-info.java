/** kvass cluster module. */
package io.kvass.cluster;
