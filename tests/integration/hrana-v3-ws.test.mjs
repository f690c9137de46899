// @libsql/hrana-client 0.10 used directly with protocol version 3 over WebSocket (the tests are
// in hrana-v3-suite.mjs, the same ones hrana-v3.test.mjs runs over HTTP), once per encoding:
//
//   * hrana3-protobuf: openWs(url, jwt, 3) offers `hrana3-protobuf, hrana3, hrana2, hrana1` (its
//     subprotocolsV3 map, in that order), and the server prefers hrana3-protobuf, so the real
//     openWs ends up on protobuf binary frames.
//   * hrana3 (JSON): openWs never offers hrana3 without hrana3-protobuf, so this run builds the
//     client exactly as openWs does, `new WsClient(new WebSocket(url, protocols), jwt)` with the
//     client's own exported WebSocket and WsClient, but offers only `hrana3, hrana2, hrana1`.
//     Everything after the constructor is the unmodified client.
//
// Which subprotocol was negotiated, and what went over the wire, is checked by observing the `ws`
// WebSocket class the client uses (@libsql/isomorphic-ws re-exports it; hrana-client re-exports
// that): its `send` and `emit('message')` are wrapped for the duration of this file to record
// every frame with its socket's negotiated `protocol` (the server's Sec-WebSocket-Protocol
// answer, which `ws` checks against the offer). The recorded request types also prove that
// cursors really went through open_cursor/fetch_cursor.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { WebSocket, WsClient, openWs } from '@libsql/hrana-client';

import { defineHranaV3Tests } from './hrana-v3-suite.mjs';
import { useServer } from './server.mjs';
import { WebSocket as WsPackageWebSocket, pbClientMsgType, wsUrl } from './ws-helpers.mjs';

/** Frames of every socket of the `ws` class, while recording is on. */
const frames = []; // { socket, protocol, direction: 'sent' | 'received', binary, type }

function frameType(data, binary) {
  if (binary) return pbClientMsgType(Buffer.from(data instanceof ArrayBuffer ? new Uint8Array(data) : data));
  const msg = JSON.parse(String(data));
  return msg.type === 'request' ? msg.request.type : msg.type;
}

function startRecording() {
  const proto = WebSocket.prototype;
  const { send, emit } = proto;
  proto.send = function recordingSend(data, options, cb) {
    const binary = options?.binary ?? typeof data !== 'string';
    frames.push({ socket: this, protocol: this.protocol, direction: 'sent', binary, type: frameType(data, binary) });
    return send.call(this, data, options, cb);
  };
  proto.emit = function recordingEmit(event, ...args) {
    if (event === 'message') {
      const [, isBinary] = args;
      frames.push({ socket: this, protocol: this.protocol, direction: 'received', binary: isBinary });
    }
    return emit.call(this, event, ...args);
  };
  return () => {
    proto.send = send;
    proto.emit = emit;
  };
}

describe('@libsql/hrana-client, protocol 3 over WebSocket', () => {
  const server = useServer();
  let stopRecording;

  before(() => {
    // The class the client uses must be the one recorded here, or the checks below prove nothing.
    assert.equal(WebSocket, WsPackageWebSocket, 'hrana-client does not use the `ws` package WebSocket');
    stopRecording = startRecording();
  });
  after(() => stopRecording?.());

  const variants = [
    {
      subprotocol: 'hrana3-protobuf',
      encoding: 'protobuf',
      open: (url) => openWs(url, undefined, 3),
    },
    {
      subprotocol: 'hrana3',
      encoding: 'json',
      // See the file comment: openWs with a different offer list.
      open: (url) => new WsClient(new WebSocket(url, ['hrana3', 'hrana2', 'hrana1']), undefined),
    },
  ];

  for (const { subprotocol, encoding, open } of variants) {
    describe(`Hrana 3 over WebSocket with ${subprotocol}`, () => {
      let client;
      let firstFrame; // index into `frames` where this client's traffic starts
      const mine = () => frames.slice(firstFrame);

      before(async () => {
        firstFrame = frames.length;
        client = open(wsUrl(server));
        assert.equal(await client.getVersion(), 3, 'protocol version 3 was not negotiated');
      });

      after(() => client?.close());

      defineHranaV3Tests({
        encoding,
        getClient: () => client,
        traffic: {
          mark: () => frames.length,
          assertCursorUsedSince(mark) {
            const types = frames.slice(mark).filter((f) => f.direction === 'sent').map((f) => f.type);
            assert.ok(types.includes('open_cursor') && types.includes('fetch_cursor'),
                      `no open_cursor/fetch_cursor request: ${types.join(', ')}`);
          },
        },
      });

      test(`${subprotocol} was negotiated and every frame was ${encoding === 'protobuf' ? 'binary' : 'text'}`, () => {
        // This client's connection is the one that sent the first frame (its hello) after the
        // client was created; frames still arriving on the previous variant's socket are not its.
        const firstSent = mine().find((f) => f.direction === 'sent');
        assert.equal(firstSent?.type, 'hello');
        const { socket } = firstSent;
        assert.deepEqual(mine().filter((f) => f.direction === 'sent' && f.socket !== socket), [],
                         'the client sent frames on more than one connection');
        const traffic = mine().filter((f) => f.socket === socket);
        assert.equal(socket.protocol, subprotocol);
        assert.ok(traffic.every((f) => f.protocol === subprotocol));
        const binary = encoding === 'protobuf';
        const sent = traffic.filter((f) => f.direction === 'sent');
        const received = traffic.filter((f) => f.direction === 'received');
        assert.ok(sent.length > 20 && received.length > 20, `too little traffic: ${sent.length}/${received.length}`);
        assert.deepEqual(sent.filter((f) => f.binary !== binary), [], 'a frame of the wrong type was sent');
        assert.deepEqual(received.filter((f) => f.binary !== binary), [], 'a frame of the wrong type came back');
        // Every request type of Hrana 3 went over this connection.
        const types = new Set(sent.map((f) => f.type));
        for (const type of ['hello', 'open_stream', 'close_stream', 'execute', 'batch', 'sequence', 'describe',
          'store_sql', 'close_sql', 'get_autocommit', 'open_cursor', 'fetch_cursor', 'close_cursor']) {
          assert.ok(types.has(type), `no ${type} was sent; sent: ${[...types].join(', ')}`);
        }
      });
    });
  }
});
