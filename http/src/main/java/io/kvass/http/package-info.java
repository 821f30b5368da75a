/** kvass http module. */
package io.kvass.http;
