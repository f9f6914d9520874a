// The peer data plane's blob answers to patient peers (replication): one sender of a large blob at a time, and
// that count kept right when a peer leaves before its answer began.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { digestOf } from '../oci/digest.js';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { peerKey } from './peer-auth.js';
import { PeerClient } from './peer-client.js';
import { BLOB_PATH, PATIENT_HEADER, SEQUENCE_PATH } from './peer-protocol.js';
import { createPeerServer } from './peer-server.js';
import { Spools } from './spools.js';
import { cleanUp } from '../../test/helpers/cleanups.js';

const key = peerKey(new TextEncoder().encode('peer server test'));
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  await cleanUp(cleanups);
});

it('answers a patient peer after another one left while waiting for the same blob: that one is no longer counted as sent to', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-server-test-'));
  const store = new MemoryStore();
  const app = createPeerServer({ store, spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log: pino({ level: 'silent' }), awaitCopyMs: 5_000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close());
  const peer = { id: 'node-a', url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
  const client = new PeerClient(key);
  const bytes = randomBytes(1 << 20);
  const path = `${BLOB_PATH}${digestOf(bytes)}`;
  const ask = (asker: string, signal: AbortSignal) => client.request(peer, path, { headers: { [PATIENT_HEADER]: asker }, signal });

  // A stand-in asked alone gives up quickly; the copy it waited for begins just after.
  await expect(ask('leaver', AbortSignal.timeout(200))).rejects.toThrow();
  await putBlob(store, bytes, digestOf(bytes));
  await new Promise((resolve) => setTimeout(resolve, 500)); // the server's wait finds it, after the asker left

  const res = await ask('taker', AbortSignal.timeout(5_000));
  expect(res.status, 'a later patient peer').toBe(200);
  expect(Buffer.concat(await res.body.toArray()).equals(bytes)).toBe(true);
});

it('logs requests without a membership proof now and then per address, not one line each', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-server-test-'));
  const lines: { msg: string; url?: string; suppressed?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const app = createPeerServer({ store: new MemoryStore(), spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close());
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/${'x'.repeat(8000)}`;
  for (let i = 0; i < 50; i++) expect((await fetch(url)).status).toBe(401);
  const refused = lines.filter((l) => l.msg === 'peer request without a valid membership proof');
  expect(refused).toHaveLength(1);
  expect(refused[0].url!.length).toBeLessThanOrEqual(200);
});

/** A raw connection to the data plane: what it sends, and when the server closes it. */
async function rawConnection(port: number, from = '127.0.0.1') {
  const socket = connect({ port, host: '127.0.0.1', localAddress: from });
  await once(socket, 'connect');
  let received = '';
  socket.on('data', (d: Buffer) => (received += d.toString('latin1')));
  const closed = once(socket, 'close').then(() => true);
  socket.on('error', () => undefined); // a reset by the server is what some tests wait for
  return { socket, closed, received: () => received };
}

it('closes the connection of a request without a proof: a non-member cannot hold one by asking now and then', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-server-test-'));
  const app = createPeerServer({ store: new MemoryStore(), spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log: pino({ level: 'silent' }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close());
  const conn = await rawConnection((app.server.address() as AddressInfo).port);
  conn.socket.write('GET /peer/v1/blobs/x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n');
  expect(await Promise.race([conn.closed, new Promise((r) => setTimeout(() => r(false), 3_000))])).toBe(true);
  expect(conn.received()).toMatch(/^HTTP\/1\.1 401/);
});

it('reads at most 64 bodies at once before their proofs can be checked, 16 from one address; more are refused at once, not buffered', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'peer-server-test-'));
  const app = createPeerServer({ store: new MemoryStore(), spools: await Spools.open(dir), membershipKey: key, selfId: 'node-a', log: pino({ level: 'silent' }) });
  let admitted = 0; // requests past the server's own checks, whose bodies it now reads
  app.addHook('onRequest', async () => void admitted++);
  await app.listen({ host: '127.0.0.1', port: 0 });
  const opened: Awaited<ReturnType<typeof rawConnection>>[] = [];
  cleanups.push(() => rm(dir, { recursive: true, force: true }), () => app.close(), async () => opened.forEach((c) => c.socket.destroy()));
  const port = (app.server.address() as AddressInfo).port;
  const post = `POST ${SEQUENCE_PATH} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 200000\r\n\r\n{"pieces":`;
  const whole = `POST ${SEQUENCE_PATH} HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`;
  const send = async (from: string, request: string) => {
    const c = await rawConnection(port, from);
    opened.push(c);
    c.socket.write(request);
    return c;
  };
  const answer = async (c: Awaited<ReturnType<typeof rawConnection>>) => (await Promise.race([c.closed, new Promise((r) => setTimeout(() => r(false), 3_000))])) && c.received();

  // One address: 16 bodies trickled in, the 17th refused; another address still heard.
  for (let i = 0; i < 16; i++) await send('127.0.0.2', post);
  await expect.poll(() => admitted, { timeout: 5_000 }).toBe(16);
  expect(await answer(await send('127.0.0.2', post))).toMatch(/^HTTP\/1\.1 503/);
  expect(await answer(await send('127.0.0.3', whole))).toMatch(/^HTTP\/1\.1 401/);

  // Many addresses: 64 in all, then nobody's.
  for (const from of ['127.0.0.4', '127.0.0.5', '127.0.0.6']) for (let i = 0; i < 16; i++) await send(from, post);
  await expect.poll(() => admitted, { timeout: 5_000 }).toBe(65);
  expect(await answer(await send('127.0.0.7', post))).toMatch(/^HTTP\/1\.1 503/);

  // Once those bodies end (here: their connections), bodies are read again.
  for (const c of opened) c.socket.destroy();
  await expect.poll(async () => answer(await send('127.0.0.2', whole)), { timeout: 5_000 }).toMatch(/^HTTP\/1\.1 401/);
});
