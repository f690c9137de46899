// @libsql/hrana-client 0.10 used directly with protocol version 3 over HTTP (the tests are in
// hrana-v3-suite.mjs; hrana-v3-ws.test.mjs runs them over WebSocket).
//
// The client probes `GET /v3-protobuf` and, when it answers 200, speaks protobuf on
// /v3-protobuf/pipeline and /v3-protobuf/cursor. Its JSON v3 endpoint is commented out of its
// probe list, so for the JSON run we point the client's negotiated endpoint at /v3/pipeline and
// /v3/cursor after the probe (the `_endpoint` field the client reads before every request).
// Every test therefore runs twice, once per encoding, and a recording fetch checks which
// routes were really used.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { openHttp } from '@libsql/hrana-client';

import { defineHranaV3Tests } from './hrana-v3-suite.mjs';
import { useServer } from './server.mjs';

describe('@libsql/hrana-client, protocol 3', () => {
  const server = useServer();

  const ENDPOINTS = {
    protobuf: { pipeline: '/v3-protobuf/pipeline', cursor: '/v3-protobuf/cursor' },
    json: { pipeline: '/v3/pipeline', cursor: '/v3/cursor' },
  };

  for (const encoding of ['protobuf', 'json']) {
    describe(`Hrana 3 over HTTP with ${encoding}`, () => {
      const requests = []; // "METHOD /path" of every HTTP request the client made
      let client;

      before(async () => {
        const recordingFetch = (request) => {
          requests.push(`${request.method} ${new URL(request.url).pathname}`);
          return fetch(request);
        };
        client = openHttp(server.url, undefined, recordingFetch, undefined, 3);
        assert.equal(await client.getVersion(), 3, 'the server did not answer the GET /v3-protobuf probe');
        if (encoding === 'json') {
          const endpoint = {
            versionPath: 'v3',
            pipelinePath: 'v3/pipeline',
            cursorPath: 'v3/cursor',
            version: 3,
            encoding: 'json',
          };
          client._endpoint = endpoint;
          client._endpointPromise = Promise.resolve(endpoint);
        }
      });

      after(() => client?.close());

      defineHranaV3Tests({
        encoding,
        getClient: () => client,
        traffic: {
          mark: () => requests.length,
          assertCursorUsedSince(mark) {
            assert.ok(requests.slice(mark).includes(`POST ${ENDPOINTS[encoding].cursor}`),
                      `no request to ${ENDPOINTS[encoding].cursor}: ${requests.slice(mark).join(', ')}`);
          },
        },
      });

      test(`only the ${encoding} v3 routes were used`, () => {
        const posts = new Set(requests.filter((r) => r.startsWith('POST ')));
        assert.deepEqual([...posts].sort(),
                         [`POST ${ENDPOINTS[encoding].cursor}`, `POST ${ENDPOINTS[encoding].pipeline}`].sort());
        assert.ok(requests.includes('GET /v3-protobuf'), `no version probe: ${requests.join(', ')}`);
      });
    });
  }
});
