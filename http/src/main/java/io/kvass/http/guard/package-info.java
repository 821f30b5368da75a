/**
 * What the API server admits before a request reaches a route: bounded time to send headers and body,
 * connections per client address, JSON-only bodies, and errors of the HTTP layer itself in OpenAI's
 * shape. Plain classes and one stream stage; the routes stay unaware of sockets.
 */
package io.kvass.http.guard;
