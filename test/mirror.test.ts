// containerd on node B pulls, through its meshd, an image only node A holds: no upstream involved.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { peerKey, proof } from '../src/mirror/peer-auth.js';
import { parseSwarmKey } from '../src/dht/swarm-key.js';
import { ctr } from './helpers/containerd.js';
import { startMeshd, waitForDataPlane, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { peerFetch } from './helpers/peer-fetch.js';
import { run, skopeo } from './helpers/run.js';
import { waitFor } from './helpers/wait.js';

const MESHCTL = new URL('../dist/src/cli/meshctl.js', import.meta.url).pathname;
const MiB = 1 << 20;

describe('the mirror', () => {
  const socket = inject('containerdSocket');
  const dir = mkdtempSync(join(tmpdir(), 'mirror-test-'));
  const keyFile = join(dir, 'swarm.key');
  const nsA = `mirror-a-${randomUUID().slice(0, 8)}`;
  const nsB = `mirror-b-${randomUUID().slice(0, 8)}`;
  let a: Meshd;
  let b: Meshd;
  let image: BuiltImage;

  beforeAll(async () => {
    await run(process.execPath, [MESHCTL, 'swarm-key', 'generate', keyFile]);
    image = buildImage({ layerSizes: [512 * 1024, 3 * MiB, 8 * MiB], tag: '1' });
    // No replication: the image must stay on node a only, so that b can only get it through its mirror.
    const common = ['--store', 'containerd', '--containerd-socket', socket, '--swarm-key', keyFile, '--reconcile-interval', '1s', '--replicate', 'none'];
    a = await startMeshd([...common, '--containerd-namespace', nsA, '--node-name', 'a']);
    b = await startMeshd([...common, '--containerd-namespace', nsB, '--node-name', 'b', '--bootstrap', a.p2p[0]]);
    await skopeo(['copy', `oci:${image.dir}:1`, `docker://${a.host}/app:1`, '--dest-tls-verify=false']);
    await waitForDataPlane(b, a);
  });

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    rmSync(dir, { recursive: true, force: true });
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('lets containerd pull by the original name, every digest identical, and node b then holds and announces it', async () => {
    const hosts = join(dir, 'certs.d');
    mkdirSync(join(hosts, '_default'), { recursive: true });
    // Only meshd: if it could not serve, the pull would fail (the upstream is not reachable here).
    writeFileSync(join(hosts, '_default', 'hosts.toml'), `server = "http://127.0.0.1:9"\n[host."${b.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    await ctr(socket, ['-n', nsB, 'images', 'pull', '--hosts-dir', hosts, 'docker.io/library/app:1']);
    expect(await ctr(socket, ['-n', nsB, 'images', 'ls'])).toMatch(new RegExp(`docker\\.io/library/app:1\\s+\\S+\\s+${image.digest}`));
    const content = await ctr(socket, ['-n', nsB, 'content', 'ls']);
    for (const blob of image.blobs) expect(content).toContain(blob.digest);
    // Every blob came from node a's data plane (containerd shares no content between these namespaces).
    const fetched = b.logs.filter((l) => l.msg === 'fetched from the mesh').map((l) => l.digest);
    for (const blob of image.blobs) expect(fetched).toContain(blob.digest);
    // Node b announces what it now holds.
    await waitFor('node a to see node b holding the largest layer', async () => {
      const res = JSON.parse(await run(process.execPath, [MESHCTL, '--node', a.url, '--json', 'who-has', image.layers[2].digest]));
      return res.providers.some((p: { id: string }) => p.id === b.peerId);
    });
  });

  it('answers 404 in the spec format when nobody has the blob', async () => {
    const missing = `sha256:${'1'.repeat(64)}`;
    const res = await fetch(`${b.url}/v2/app/blobs/${missing}`);
    expect(res.status).toBe(404);
    expect((await res.json()).errors[0].code).toBe('BLOB_UNKNOWN');
  });

  it('looks only for the registries it is told to mirror, and resolves tags only when allowed', async () => {
    // Mirrors only: with replication, a node joining after a push copies it (catch-up) and holds it itself.
    const common = ['--store', 'containerd', '--containerd-socket', socket, '--swarm-key', keyFile, '--bootstrap', a.p2p[0], '--replicate', 'none'];
    const ghcrOnly = await startMeshd([...common, '--containerd-namespace', `mirror-c-${randomUUID().slice(0, 8)}`, '--mirror-registry', 'ghcr.io']);
    const noTags = await startMeshd([...common, '--containerd-namespace', `mirror-d-${randomUUID().slice(0, 8)}`, '--no-mirror-tags']);
    try {
      for (const node of [ghcrOnly, noTags]) {
        await waitFor('the new node to know node a', async () =>
          JSON.parse(await run(process.execPath, [MESHCTL, '--node', node.url, '--json', 'peers'])).some((p: { id: string; info?: unknown }) => p.id === a.peerId && p.info));
      }
      const layer = image.layers[0].digest;
      expect((await fetch(`${ghcrOnly.url}/v2/library/app/blobs/${layer}?ns=docker.io`)).status).toBe(404);
      expect((await fetch(`${ghcrOnly.url}/v2/library/app/manifests/1?ns=docker.io`)).status).toBe(404);
      expect((await fetch(`${noTags.url}/v2/library/app/manifests/1?ns=docker.io`)).status).toBe(404);
      const byDigest = await fetch(`${noTags.url}/v2/library/app/blobs/${layer}?ns=docker.io`);
      expect(byDigest.status).toBe(200);
      expect(Buffer.from(await byDigest.arrayBuffer()).length).toBe(image.layers[0].size);
    } finally {
      await Promise.all([ghcrOnly.stop(), noTags.stop()]);
    }
  });

  it('refuses peer requests without a valid membership proof, with no bytes', async () => {
    const path = `/peer/v1/blobs/${image.layers[0].digest}`;
    const none = await peerFetch(`${a.peerUrl}${path}`);
    expect(none.status).toBe(401);
    expect(none.body.toString()).not.toContain('\u0000');
    const wrongKey = peerKey(parseSwarmKey(await run(process.execPath, [MESHCTL, 'swarm-key', 'generate'])));
    const wrong = await peerFetch(`${a.peerUrl}${path}`, { headers: { 'x-layermesh-auth': proof(wrongKey, { method: 'GET', path, target: a.peerId }) } });
    expect(wrong.status).toBe(401);
    const right = peerKey(parseSwarmKey(await run('cat', [keyFile])));
    const stale = await peerFetch(`${a.peerUrl}${path}`, { headers: { 'x-layermesh-auth': proof(right, { method: 'GET', path, target: a.peerId }, Date.now() - 10 * 60_000) } });
    expect(stale.status).toBe(401);
    const otherPath = await peerFetch(`${a.peerUrl}${path}`, { headers: { 'x-layermesh-auth': proof(right, { method: 'GET', path: '/peer/v1/blobs/other', target: a.peerId }) } });
    expect(otherPath.status).toBe(401);
    const header = proof(right, { method: 'GET', path, target: a.peerId });
    const ok = await peerFetch(`${a.peerUrl}${path}`, { headers: { 'x-layermesh-auth': header } });
    expect(ok.status).toBe(200);
    expect(ok.body.length).toBe(image.layers[0].size);
    // A captured proof is good once, and only on the node it was made for.
    for (const url of [a.peerUrl, b.peerUrl]) {
      const replayed = await peerFetch(`${url}${path}`, { headers: { 'x-layermesh-auth': header } });
      expect(replayed.status).toBe(401);
      expect(replayed.body.length).toBeLessThan(1000);
    }
  });
});
