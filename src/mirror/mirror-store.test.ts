// The registry on the mirror store: what this host lacks is read through from a peer (a real HTTP server
// standing in for its data plane), for GET, HEAD and ranges, only in mirrored registries.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Access } from '../registry/access.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { MemoryStore } from '../store/memory-store.js';
import { Mirror } from './mirror.js';
import { mirrorStore } from './mirror-store.js';
import { peerKey } from './peer-auth.js';
import { PeerClient } from './peer-client.js';
import { Spools } from './spools.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const log = pino({ level: 'silent' });
const layer = randomBytes(300_000);
const manifest = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(layer), size: layer.length }, layers: [],
}));

let dir: string;
let peer: Server;
let asked: string[];
let local: MemoryStore;
let registry: ReturnType<typeof createRegistry>;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'mirror-store-test-'));
  asked = [];
  // The peer holds the layer and the manifest, and answers from any offset, as the data plane does.
  peer = createServer((req, res) => {
    asked.push(req.url!);
    const held = [layer, manifest].find((b) => req.url!.endsWith(sha(b)));
    if (!held) return void res.writeHead(404).end();
    const offset = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    res.writeHead(offset ? 206 : 200, { 'content-length': held.length - offset }).end(held.subarray(offset));
  });
  await new Promise<void>((r) => peer.listen(0, '127.0.0.1', r));
  const endpoint = { id: 'peer', rttMs: 1, url: `http://127.0.0.1:${(peer.address() as AddressInfo).port}` };
  local = new MemoryStore();
  const mirror = new Mirror({
    store: local, spools: await Spools.open(dir), members: { self: 'self', holders: async () => [endpoint], dataPlaneOf: () => undefined }, peers: new PeerClient(peerKey(undefined)), log,
    lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true, clientCommitGraceMs: 50,
  });
  const limits = { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 };
  registry = createRegistry({
    store: mirrorStore(local, mirror, { registries: ['docker.io'] }),
    uploads: new UploadSessions(local, limits, log), log, maxManifestBytes: 4 << 20,
    access: new Access({ writeGroup: 'layermesh', log }),
  });
});

afterEach(async () => {
  await registry.close();
  peer.closeAllConnections();
  await new Promise((r) => peer.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('the mirror store under the registry', () => {
  it('streams a blob this host lacks from the peer, verified, and keeps it', async () => {
    const res = await registry.inject({ method: 'GET', url: `/v2/app/blobs/${sha(layer)}` });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(layer)).toBe(true);
    await expect.poll(() => local.stat(sha(layer))).toBeDefined();
  });

  it('answers HEAD with the size and a range with its bytes', async () => {
    const head = await registry.inject({ method: 'HEAD', url: `/v2/app/blobs/${sha(layer)}` });
    expect(head.statusCode).toBe(200);
    expect(Number(head.headers['content-length'])).toBe(layer.length);
    const part = await registry.inject({ method: 'GET', url: `/v2/app/blobs/${sha(layer)}`, headers: { range: 'bytes=100-199' } });
    expect(part.statusCode).toBe(206);
    expect(part.rawPayload.equals(layer.subarray(100, 200))).toBe(true);
  });

  it('serves a manifest by digest from the peer, and a layer never as a manifest', async () => {
    const res = await registry.inject({ method: 'GET', url: `/v2/app/manifests/${sha(manifest)}` });
    expect(res.statusCode).toBe(200);
    expect(res.rawPayload.equals(manifest)).toBe(true);
    expect((await registry.inject({ method: 'GET', url: `/v2/app/manifests/${sha(layer)}` })).statusCode).toBe(404);
  });

  it('answers 404 for what nobody holds, and asks no peer for a registry it does not mirror', async () => {
    expect((await registry.inject({ method: 'GET', url: `/v2/app/blobs/${sha(randomBytes(10))}` })).statusCode).toBe(404);
    asked = [];
    expect((await registry.inject({ method: 'GET', url: `/v2/ghcr.io/org/app/blobs/${sha(layer)}` })).statusCode).toBe(404);
    expect(asked).toEqual([]);
  });
});
