// @libsql/client 0.18 over HTTP, exactly as applications use it (the tests are in
// client-suite.mjs). Over HTTP this client never probes: it speaks Hrana v2 JSON on
// POST /v2/pipeline only (no cursors, no is_autocommit).
//
// Two URL forms lead there through createClient from '@libsql/client': `http://HOST:PORT` and
// `libsql://HOST:PORT?tls=0` (this entry point maps libsql: to HTTP; ?tls=0 makes it plain http).

import { createClient } from '@libsql/client';

import { defineClientSuite } from './client-suite.mjs';

defineClientSuite({
  title: '@libsql/client over HTTP (http:// URL)',
  createClient,
  url: (server) => server.url,
  protocol: 'http',
});

defineClientSuite({
  title: '@libsql/client over HTTP (libsql://?tls=0 URL)',
  createClient,
  url: (server) => `libsql://${server.host}:${server.port}?tls=0`,
  protocol: 'http',
});
