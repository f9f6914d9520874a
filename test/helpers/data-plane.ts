// Real peer data planes (fastify on loopback) and replicating mirrors for the data plane's tests
// (src/mirror/blob-sequence.test.ts, src/mirror/endgame.test.ts). Whatever they start is undone by cleanUp().
import { randomBytes } from 'node:crypto';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { MemoryStore } from '../../src/store/memory-store.js';
import { putBlob, type Store } from '../../src/store/store.js';
import { digestOf, type Descriptor } from '../../src/oci/digest.js';
import { Mirror } from '../../src/mirror/mirror.js';
import { peerKey } from '../../src/mirror/peer-auth.js';
import { PeerClient } from '../../src/mirror/peer-client.js';
import type { DataPlane } from '../../src/dht/membership.js';
import { createPeerServer, type PeerServerOptions } from '../../src/mirror/peer-server.js';
import { Spools } from '../../src/mirror/spools.js';
import { cleanUp as runCleanups } from './cleanups.js';

export const key = peerKey(new TextEncoder().encode('sequence test'));
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const cleanups: (() => Promise<unknown>)[] = [];

/** Stops and removes everything started since the last call, last first. */
export async function cleanUp(): Promise<void> {
  await runCleanups(cleanups);
}

export function onCleanUp(c: () => Promise<unknown>): void {
  cleanups.push(c);
}

export async function spoolsIn(): Promise<Spools> {
  const dir = await mkdtemp(join(tmpdir(), 'sequence-test-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return Spools.open(dir);
}

/** A real peer data plane on loopback, counting the requests it answers by path. */
export async function holder(id: string, store: Store, spools?: Spools, opts: Partial<PeerServerOptions> = {}) {
  const app = createPeerServer({ store, spools: spools ?? (await spoolsIn()), membershipKey: key, selfId: id, log, awaitCopyMs: 500, ...opts });
  const requests: string[] = [];
  app.addHook('onRequest', async (req) => void requests.push(req.url));
  await app.listen({ host: '127.0.0.1', port: 0 });
  cleanups.push(() => app.close());
  const { port } = app.server.address() as AddressInfo;
  return { endpoint: { id, url: `http://127.0.0.1:${port}` } as DataPlane, requests };
}

/** A peer answering with `handle`, not meshd's data plane: for peers that misbehave. */
export async function rawPeer(id: string, handle: RequestListener): Promise<DataPlane> {
  const server: Server = createServer(handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise((r) => {
    server.close(r);
    server.closeAllConnections(); // kept-alive ones too, whose timeout close() would wait out
  }));
  return { id, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * A slow feeder: answers each request with what `bytesFor` makes of its body, `chunk` bytes every `everyMs`,
 * the first after `firstAfterMs`; `sent()` counts them.
 */
export async function trickling(id: string, bytesFor: (body: Buffer) => Buffer, chunk: number, everyMs: number, { firstAfterMs = 0 } = {}) {
  let sent = 0;
  const peer = await rawPeer(id, async (req, res) => {
    const bytes = bytesFor(Buffer.concat(await req.toArray()));
    res.writeHead(200).flushHeaders();
    const next = (at: number) => {
      if (res.destroyed || at >= bytes.length) return void res.end();
      const piece = bytes.subarray(at, at + chunk);
      sent += piece.length;
      res.write(piece, () => setTimeout(() => next(at + piece.length), everyMs));
    };
    setTimeout(() => next(0), firstAfterMs);
  });
  return { peer, sent: () => sent };
}

/** A feeder that sends `bytes` and then closes the connection. */
export function quitting(bytes: Buffer): Promise<DataPlane> {
  return rawPeer('quitter', (_req, res) => {
    res.writeHead(200);
    res.write(bytes, () => res.destroy());
  });
}

export async function blobsIn(store: Store, sizes: number[]): Promise<{ desc: Descriptor; bytes: Buffer }[]> {
  return Promise.all(sizes.map(async (size) => {
    const bytes = randomBytes(size);
    const digest = digestOf(bytes);
    await putBlob(store, bytes, digest);
    return { desc: { mediaType: 'application/octet-stream', digest, size }, bytes };
  }));
}

/** A replicating node: a mirror, and (`spools` given) a data plane serving what it receives. */
export async function taker(peers: DataPlane[], self = 'taker', spools?: Spools, { stallTimeoutMs = 2000 } = {}) {
  const store = new MemoryStore();
  const mirror = new Mirror({
    store, spools: spools ?? (await spoolsIn()), peers: new PeerClient(key), log, lookupTimeoutMs: 500, stallTimeoutMs,
    members: { self, holders: async () => [], dataPlaneOf: (id) => peers.find((p) => p.id === id) },
    resolveTags: false, patienceMs: 2000,
  });
  /** Fetches `blobs` one after another from the sequence `from` sends, as replication does; throws when one is not stored. */
  const fetchInOrder = async (from: string, blobs: Descriptor[], fallback: string[] = [from]) => {
    const pieces = blobs.map(({ digest, size }) => ({ digest, size, offset: 0, length: size }));
    const sequence = await mirror.openSequence(from, pieces);
    try {
      for (const piece of pieces) {
        const lanes = { size: piece.size, lanes: [{ offset: 0, length: piece.size, source: sequence.next(piece) }] };
        const fetching = mirror.fetch(piece.digest, { from: fallback, patient: true, lanes });
        if (!(await fetching.verified) || !(await fetching.stored)) throw new Error(`${piece.digest} was not fetched`);
      }
    } finally {
      sequence.close();
    }
  };
  const holds = async (bytes: Buffer) => Buffer.concat(await (await store.open(digestOf(bytes))).stream.toArray()).equals(bytes);
  return { store, mirror, fetchInOrder, holds };
}
