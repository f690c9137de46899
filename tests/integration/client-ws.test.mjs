// @libsql/client 0.18 over WebSocket, exactly as applications use it (the tests are in
// client-suite.mjs, the same ones client-http.test.mjs runs over HTTP). Over WebSocket the client
// offers the subprotocols `hrana2, hrana1`, so the server negotiates Hrana 2 with JSON text
// frames; one client shares one connection between all its streams.
//
// Three ways lead there:
//   * `ws://HOST:PORT` through createClient from '@libsql/client' (it dispatches ws: to its
//     WebSocket client),
//   * `ws://HOST:PORT` through createClient from '@libsql/client/ws',
//   * `libsql://HOST:PORT?tls=0` through createClient from '@libsql/client/ws' (this entry point
//     maps libsql: to ws:, where '@libsql/client' would map it to HTTP).

import { createClient } from '@libsql/client';
import { createClient as createWsClient } from '@libsql/client/ws';

import { defineClientSuite } from './client-suite.mjs';

const wsUrl = (server) => `ws://${server.host}:${server.port}`;

defineClientSuite({
  title: '@libsql/client over WebSocket (ws:// URL)',
  createClient,
  url: wsUrl,
  protocol: 'ws',
});

defineClientSuite({
  title: '@libsql/client/ws over WebSocket (ws:// URL)',
  createClient: createWsClient,
  url: wsUrl,
  protocol: 'ws',
});

defineClientSuite({
  title: '@libsql/client/ws over WebSocket (libsql://?tls=0 URL)',
  createClient: createWsClient,
  url: (server) => `libsql://${server.host}:${server.port}?tls=0`,
  protocol: 'ws',
});
