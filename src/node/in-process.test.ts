// Three nodes in one process, wired as meshd wires them but on the twins: memory stores, the memory router
// and memory membership. Only the peer data planes are real (fastify on loopback). A push to one node
// reaches another by replication, and a third, which takes nothing by policy, pulls it through its mirror.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryMembership } from '../dht/memory-membership.js';
import { MemoryMesh } from '../dht/memory-router.js';
import { Mirror } from '../mirror/mirror.js';
import { mirrorStore } from '../mirror/mirror-store.js';
import { peerKey } from '../mirror/peer-auth.js';
import { createPeerServer } from '../mirror/peer-server.js';
import { Spools } from '../mirror/spools.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { MemoryStore } from '../store/memory-store.js';
import { Holdings } from './holdings.js';
import { pushGossip } from './push-event.js';
import { parseReplicationPolicy } from './replication-policy.js';
import { NewestPushes } from './newest-pushes.js';
import { PushFollower } from './push-follower.js';
import { Replicator } from './replicator.js';
import { TagRecords } from './tag-records.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const log = pino({ level: 'silent' });
const key = peerKey(undefined);
const mesh = new MemoryMesh();
const planes = new Map<string, string>();
const closers: (() => Promise<unknown>)[] = [];
let dir: string;

async function node(id: string, replicate: string) {
  const store = new MemoryStore();
  const spools = await Spools.open(join(dir, id));
  const peerServer = createPeerServer({ store, spools, membershipKey: key, selfId: id, log });
  planes.set(id, await peerServer.listen({ host: '127.0.0.1', port: 0 }));
  const router = mesh.join({ id, info: { name: id, labels: {}, dataPlanePort: 1, replicate } });
  const membership = new MemoryMembership(mesh, router, planes);
  const holdings = new Holdings(store, router, log, 60_000, 0);
  await holdings.start();
  const mirror = new Mirror({
    store, spools, members: membership, membershipKey: key, log, lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true,
    clientCommitGraceMs: 50, partialHolder: (digest) => holdings.announceArriving(digest),
  });
  const pushes = new NewestPushes(id);
  const replicator = new Replicator({ store, records: new TagRecords(store, pushes, log), membership, mirror, log });
  const policy = parseReplicationPolicy(replicate);
  const follower = new PushFollower({ store, pushes, replicator, membership, policy, self: { name: id, labels: {} }, log });
  router.onEvent((event) => follower.onEvent(event));
  const limits = { maxBlobBytes: 1 << 30, idleTimeoutMs: 60_000, maxSessions: 100, maxSessionsPerClient: 100 };
  const registry = createRegistry({
    store: mirrorStore(store, mirror), uploads: new UploadSessions(store, limits, log), log,
    maxManifestBytes: MAX_MANIFEST_BYTES, pushes: pushGossip(store, router, pushes, log),
  });
  closers.push(() => registry.close(), () => peerServer.close(), async () => holdings.stop());
  return { store, registry };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'in-process-'));
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await rm(dir, { recursive: true, force: true });
});

describe('three nodes in one process', () => {
  it('replicate a push to a node that takes it, and serve it to one that does not through its mirror', async () => {
    const [a, b, c] = [await node('a', 'all'), await node('b', 'all'), await node('c', 'none')];
    const layer = randomBytes(400_000);
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    for (const blob of [layer, config]) {
      const res = await a.registry.inject({ method: 'POST', url: `/v2/app/blobs/uploads/?digest=${sha(blob)}`, payload: blob });
      expect(res.statusCode).toBe(201);
    }
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    }));
    const put = await a.registry.inject({
      method: 'PUT', url: '/v2/app/manifests/1', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest,
    });
    expect(put.statusCode).toBe(201);

    // b takes the push; c (policy none) does not.
    await expect.poll(async () => (await b.store.images.get('docker.io/library/app:1'))?.target.digest, { timeout: 10_000 }).toBe(sha(manifest));
    expect((await b.store.stat(sha(layer)))?.size).toBe(layer.length);
    expect(await c.store.images.get('docker.io/library/app:1')).toBeUndefined();

    // c's clients still pull it: the tag, the manifest and the layer come through c's mirror.
    const tagged = await c.registry.inject({ method: 'GET', url: '/v2/app/manifests/1' });
    expect(tagged.statusCode).toBe(200);
    expect(tagged.headers['docker-content-digest']).toBe(sha(manifest));
    const blob = await c.registry.inject({ method: 'GET', url: `/v2/app/blobs/${sha(layer)}` });
    expect(blob.statusCode).toBe(200);
    expect(sha(blob.rawPayload)).toBe(sha(layer));
  });
});
