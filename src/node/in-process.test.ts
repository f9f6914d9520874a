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
import { PeerClient } from '../mirror/peer-client.js';
import { createPeerServer } from '../mirror/peer-server.js';
import { Spools } from '../mirror/spools.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { Access } from '../registry/access.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { MemoryStore } from '../store/memory-store.js';
import { StoreFullError } from '../store/store.js';
import { Holdings } from './holdings.js';
import { pushGossip } from './push-event.js';
import { parseReplicationPolicy } from '../oci/replication-policy.js';
import { NewestPushes } from './newest-pushes.js';
import { PushFollower } from './push-follower.js';
import { Replicator } from './replicator.js';
import { comparePushes, pushLabels, pushOf } from '../oci/tag-push.js';
import { TagRecords } from './tag-records.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const log = pino({ level: 'silent' });
const key = peerKey(undefined);
const planes = new Map<string, string>();
const closers: (() => Promise<unknown>)[] = [];
let dir: string;

/** A node joining `mesh` (each test has its own: pushes in one test must not reach the nodes of another). */
async function node(mesh: MemoryMesh, id: string, replicate: string) {
  const store = new MemoryStore();
  const spools = await Spools.open(join(dir, id));
  const peerServer = createPeerServer({ store, spools, membershipKey: key, selfId: id, log });
  planes.set(id, await peerServer.listen({ host: '127.0.0.1', port: 0 }));
  const router = mesh.join({ id, info: { name: id, labels: {}, dataPlanePort: 1, replicate } });
  const membership = new MemoryMembership(mesh, router, planes);
  const holdings = new Holdings(store, router, log, 60_000, 0);
  await holdings.start();
  const mirror = new Mirror({
    store, spools, members: membership, peers: new PeerClient(key), log, lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true,
    clientCommitGraceMs: 50, partialHolder: (digest) => holdings.announceArriving(digest),
  });
  const pushes = new NewestPushes(id);
  const replicator = new Replicator({ store, records: new TagRecords(store, pushes, log), membership, mirror, log });
  const policy = parseReplicationPolicy(replicate);
  const follower = new PushFollower({ store, pushes, replicator, membership, policy, self: { name: id, labels: {} }, log });
  router.onEvent((event) => event.type === 'image-pushed' && follower.onEvent(event));
  const limits = { maxBlobBytes: 1 << 30, idleTimeoutMs: 60_000, maxSessions: 100, maxSessionsPerClient: 100 };
  const registry = createRegistry({
    store: mirrorStore(store, mirror), uploads: new UploadSessions(store, limits, log), log,
    maxManifestBytes: MAX_MANIFEST_BYTES, pushes: pushGossip(store, router, pushes, follower.takersOf, log),
    // Requests are injected, not sent over a socket: they come from a local root.
    access: new Access({ writeGroup: 'layermesh', log, localUid: async () => 0 }),
  });
  closers.push(() => registry.close(), () => peerServer.close(), async () => holdings.stop());
  return { store, registry, pushes };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'in-process-'));
});
afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await rm(dir, { recursive: true, force: true });
});

/** Pushes an image of one random layer to `node`'s registry as `app:<tag>`; returns its manifest digest. */
async function push(target: Awaited<ReturnType<typeof node>>, tag: string): Promise<{ digest: string; layer: Buffer }> {
  const layer = randomBytes(400_000);
  const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
  for (const blob of [layer, config]) {
    const res = await target.registry.inject({ method: 'POST', url: `/v2/app/blobs/uploads/?digest=${sha(blob)}`, payload: blob });
    expect(res.statusCode).toBe(201);
  }
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
  }));
  const put = await target.registry.inject({
    method: 'PUT', url: `/v2/app/manifests/${tag}`, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }, payload: manifest,
  });
  expect(put.statusCode).toBe(201);
  return { digest: sha(manifest), layer };
}

describe('three nodes in one process', () => {
  it('replicate a push to a node that takes it, and serve it to one that does not through its mirror', async () => {
    const mesh = new MemoryMesh();
    const [a, b, c] = [await node(mesh, 'a', 'all'), await node(mesh, 'b', 'all'), await node(mesh, 'c', 'none')];
    const { digest, layer } = await push(a, '1');

    // b takes the push; c (policy none) does not.
    await expect.poll(async () => (await b.store.images.get('docker.io/library/app:1'))?.target.digest, { timeout: 10_000 }).toBe(digest);
    expect((await b.store.stat(sha(layer)))?.size).toBe(layer.length);
    expect(await c.store.images.get('docker.io/library/app:1')).toBeUndefined();

    // c's clients still pull it: the tag, the manifest and the layer come through c's mirror.
    const tagged = await c.registry.inject({ method: 'GET', url: '/v2/app/manifests/1' });
    expect(tagged.statusCode).toBe(200);
    expect(tagged.headers['docker-content-digest']).toBe(digest);
    const blob = await c.registry.inject({ method: 'GET', url: `/v2/app/blobs/${sha(layer)}` });
    expect(blob.statusCode).toBe(200);
    expect(sha(blob.rawPayload)).toBe(sha(layer));
  });

  it('converge on the newest of two simultaneous pushes of one name, the mirror of a third included', async () => {
    const mesh = new MemoryMesh();
    const [d, e, f] = [await node(mesh, 'd', 'all'), await node(mesh, 'e', 'all'), await node(mesh, 'f', 'none')];
    const pushed = await Promise.all([push(d, 'same'), push(e, 'same')]);
    const name = 'docker.io/library/app:same';
    const stamps = await Promise.all([d, e].map(async (n) => {
      await expect.poll(async () => (await n.store.images.get(name))?.target.digest, { timeout: 10_000 }).toSatisfy((x) => x !== undefined);
      return pushOf((await n.store.images.get(name))!.labels)!;
    }));
    // Both end on one push: the newest of the two (a later clock, or the higher peer id on a tie).
    await expect.poll(async () => [(await d.store.images.get(name))?.target.digest, (await e.store.images.get(name))?.target.digest], { timeout: 10_000 })
      .toSatisfy(([x, y]) => x === y && pushed.some((p) => p.digest === x));
    const winner = (await d.store.images.get(name))!;
    expect(pushOf(winner.labels)!.node).toBe(stamps.reduce((n, s) => (comparePushes(s, n) > 0 ? s : n)).node);
    const served = await f.registry.inject({ method: 'GET', url: '/v2/app/manifests/same' });
    expect(served.headers['docker-content-digest']).toBe(winner.target.digest);
  });

  it("a mirror takes the newest push among the holders' answers, not the first holder's", async () => {
    const mesh = new MemoryMesh();
    const [g, h, i] = [await node(mesh, 'g', 'none'), await node(mesh, 'h', 'none'), await node(mesh, 'i', 'none')];
    const older = await push(g, 'lagging');
    const newer = await push(h, 'lagging');
    const name = 'docker.io/library/app:lagging';
    // g holds the name, so it follows h's newer push; then it is set back to its older push, as a holder
    // whose copy has not finished yet would be. The memory router names g first.
    await expect.poll(async () => (await g.store.images.get(name))?.target.digest, { timeout: 10_000 }).toBe(newer.digest);
    const target = (await g.store.images.get(name))!.target;
    await g.store.images.put({ name, target: { ...target, digest: older.digest }, labels: pushLabels({ clock: 1, node: 'g' }) });
    const served = await i.registry.inject({ method: 'GET', url: '/v2/app/manifests/lagging' });
    expect(served.headers['docker-content-digest']).toBe(newer.digest);
  });

  it('a push whose record could not be written (a full disk) is not taken for the newest of its name', async () => {
    const a = await node(new MemoryMesh(), 'full', 'all');
    const put = a.store.images.put.bind(a.store.images);
    a.store.images.put = async () => {
      throw new StoreFullError('no space left on the device');
    };
    const layer = randomBytes(1000);
    const config = Buffer.from('{}');
    for (const blob of [layer, config]) await a.registry.inject({ method: 'POST', url: `/v2/app/blobs/uploads/?digest=${sha(blob)}`, payload: blob });
    const manifest = JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    });
    const headers = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' };
    expect((await a.registry.inject({ method: 'PUT', url: '/v2/app/manifests/full', headers, payload: manifest })).statusCode).toBe(507);
    // Known, it would have this node ignore every push of the name from others with an older clock, for good (it is saved).
    expect(a.pushes.get('docker.io/library/app:full')).toBeUndefined();
    a.store.images.put = put;
    expect((await a.registry.inject({ method: 'PUT', url: '/v2/app/manifests/full', headers, payload: manifest })).statusCode).toBe(201);
    expect(a.pushes.get('docker.io/library/app:full')).toMatchObject({ node: 'full', digest: sha(Buffer.from(manifest)) });
  });
});
