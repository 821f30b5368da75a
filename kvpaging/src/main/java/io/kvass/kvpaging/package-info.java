/** kvass kvpaging module. */
package io.kvass.kvpaging;
