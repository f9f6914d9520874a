// Blobs served from a store that keeps no files (containerd over gRPC, memory): streamed, not empty; and what
// every GET sent, counted whichever way the blob was sent.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { register } from 'prom-client';
import { afterAll, afterEach, expect, it } from 'vitest';
import { FsStore } from '../store/fs-store.js';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob, type BlobReader, type ByteRange, type Store } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { Access } from './access.js';
import { sentBytes } from './metrics.js';
import { createRegistry } from './server.js';
import { UploadSessions } from './upload-sessions.js';

const log = pino({ level: 'silent' });
let app: ReturnType<typeof createRegistry> | undefined;
const dir = mkdtempSync(join(tmpdir(), 'lm-blobs-'));
afterEach(async () => app?.close());
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A registry on the store, holding `bytes`; the blob's URL. */
async function serve(store: Store, bytes: Buffer, idleConnectionMs?: number): Promise<string> {
  await putBlob(store, bytes, digestOf(bytes));
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 100, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 4 << 20, access: new Access({ writeGroup: 'layermesh', log }), idleConnectionMs });
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v2/app/blobs/${digestOf(bytes)}`;
}

const sentLocal = async () => (await sentBytes.get()).values.find((v) => v.labels.source === 'local')?.value ?? 0;

it('sends a blob whole, and a range of it, from a store without local files', async () => {
  const bytes = randomBytes(200_000);
  const url = await serve(new MemoryStore(), bytes);
  const whole = await fetch(url);
  expect(whole.status).toBe(200);
  expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
  const range = await fetch(url, { headers: { range: 'bytes=100-199' } });
  expect(range.status).toBe(206);
  expect(Buffer.from(await range.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);
});

it.each([
  ['from its file', () => FsStore.open(join(dir, 'fs-ranges'), log)],
  ['streamed', async () => new MemoryStore()],
])('answers a HEAD as its GET whole, ignores ranges RFC 9110 lets it ignore, and honours If-Range, sent %s', async (_how, open) => {
  const bytes = randomBytes(10_000);
  const url = await serve(await open(), bytes);
  const head = await fetch(url, { method: 'HEAD', headers: { range: 'bytes=0-0' } });
  expect([head.status, head.headers.get('content-length')]).toEqual([200, '10000']);
  expect((await fetch(url, { method: 'HEAD', headers: { range: 'bytes=99999-' } })).status).toBe(200);
  const ignored: Record<string, string>[] = [{ range: 'bytes=0-1,5-6' }, { range: 'items=0-1' }, { range: 'bytes=0-9', 'if-range': '"sha256:other"' }];
  for (const headers of ignored) {
    const whole = await fetch(url, { headers });
    expect(whole.status, JSON.stringify(headers)).toBe(200);
    expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
  }
  const ranged = await fetch(url, { headers: { range: 'bytes=0-9', 'if-range': `"${digestOf(bytes)}"` } });
  expect(ranged.status).toBe(206);
  expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(0, 10))).toBe(true);
});

it.each([
  ['from its file', () => FsStore.open(join(dir, 'fs'), log)],
  ['streamed', async () => new MemoryStore()],
])('counts the bytes of every GET of a blob sent %s, once its response ended', async (_how, open) => {
  const bytes = randomBytes(300_000);
  const url = await serve(await open(), bytes);
  const before = await sentLocal();
  for (let i = 0; i < 3; i++) expect((await (await fetch(url)).arrayBuffer()).byteLength).toBe(bytes.length);
  await fetch(url, { method: 'HEAD' });
  await expect.poll(sentLocal).toBe(before + 3 * bytes.length);
});

it('counts a blob sent whole to a client that hung up as soon as it had the last byte', async () => {
  // As the mirror's live reads do, the body ends a moment after its last byte (the spool's file is closed first).
  class SlowToEnd extends MemoryStore {
    override async open(digest: string, range?: ByteRange): Promise<BlobReader> {
      const { size, stream } = await super.open(digest, range);
      const bytes = Buffer.concat(await stream.toArray());
      return { size, stream: Readable.from((async function* () {
        yield bytes;
        await new Promise((r) => setTimeout(r, 200));
      })()) };
    }
  }
  const bytes = randomBytes(100_000);
  const url = new URL(await serve(new SlowToEnd(), bytes));
  const before = await sentLocal();
  await new Promise<void>((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.write(`GET ${url.pathname} HTTP/1.1\r\nhost: x\r\n\r\n`));
    let got = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      const head = got.indexOf('\r\n\r\n');
      if (head >= 0 && got.length - head - 4 >= bytes.length) {
        socket.end(); // as curl does once it has Content-Length bytes
        resolve();
      }
    });
    socket.on('error', reject);
  });
  await expect.poll(sentLocal, { timeout: 2000 }).toBe(before + bytes.length);
});

it.each([
  ['from its file', () => FsStore.open(join(dir, 'fs-idle'), log)],
  ['streamed', async () => new MemoryStore()],
])('closes the connection of a client that stopped reading a blob sent %s: its descriptor and buffers are let go', async (_how, open) => {
  const bytes = randomBytes(32 << 20);
  const url = new URL(await serve(await open(), bytes, 500));
  const connections = () => new Promise<number>((resolve, reject) => app!.server.getConnections((err, n) => (err ? reject(err) : resolve(n))));
  const socket = connect(Number(url.port), url.hostname, () => socket.write(`GET ${url.pathname} HTTP/1.1\r\nhost: x\r\n\r\n`));
  socket.pause();
  try {
    await expect.poll(connections).toBe(1);
    await expect.poll(connections, { timeout: 5_000 }).toBe(0);
  } finally {
    socket.destroy();
  }
});

it('refuses a single-request upload with a malformed digest before a session begins: no session counted as cancelled', async () => {
  const store = new MemoryStore();
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 100, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 4 << 20, access: new Access({ writeGroup: 'layermesh', log, localUid: async () => 0 }) });
  const ended = async () => (await register.getSingleMetric('layermesh_uploads_total')!.get()).values.reduce((n, v) => n + v.value, 0);
  const before = await ended();
  const res = await app.inject({ method: 'POST', url: '/v2/app/blobs/uploads/?digest=sha256:nothex', payload: Buffer.from('x') });
  expect([res.statusCode, res.json().errors[0].code]).toEqual([400, 'DIGEST_INVALID']);
  expect(await ended()).toBe(before);
});
