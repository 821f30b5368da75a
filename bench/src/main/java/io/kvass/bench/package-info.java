/** kvass bench module. */
package io.kvass.bench;
