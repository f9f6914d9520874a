// Several real meshd processes on loopback form a mesh: announcements, who-has, expiry, membership.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { run, skopeo } from './helpers/run.js';
import { waitFor } from './helpers/wait.js';

const MESHCTL = new URL('../dist/src/cli/meshctl.js', import.meta.url).pathname;
// No replication: these tests are about what each node announces of its own store.
const TTL = ['--record-ttl', '6s', '--reconcile-interval', '1s', '--replicate', 'none'];

interface WhoHas {
  providers: { id: string; name?: string; self: boolean; addrs: string[] }[];
}

async function meshctl(node: Meshd, args: string[]): Promise<{ code: number; out: string }> {
  try {
    return { code: 0, out: await run(process.execPath, [MESHCTL, '--node', node.url, ...args]) };
  } catch (err) {
    const cause = (err as Error & { cause?: { code?: number; stdout?: string } }).cause;
    return { code: cause?.code ?? -1, out: cause?.stdout ?? '' };
  }
}

async function whoHas(node: Meshd, key: string): Promise<string[]> {
  const { out } = await meshctl(node, ['--json', 'who-has', key]);
  return (JSON.parse(out) as WhoHas).providers.map((p) => p.id);
}

describe('a mesh of meshd processes', () => {
  const socket = inject('containerdSocket');
  const dir = mkdtempSync(join(tmpdir(), 'mesh-test-'));
  const keyFile = join(dir, 'swarm.key');
  const nodes: Meshd[] = [];
  let image: BuiltImage;
  let n1: Meshd;
  let n2: Meshd;
  let n3: Meshd;
  const n1Args = ['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', `mesh-${randomUUID().slice(0, 8)}`,
    '--swarm-key', keyFile, '--node-name', 'node1', ...TTL];
  const n1DataDir = join(dir, 'n1');

  const start = async (args: string[], opts?: { dataDir?: string }) => {
    const node = await startMeshd(args, opts);
    nodes.push(node);
    return node;
  };

  beforeAll(async () => {
    await run(process.execPath, [MESHCTL, 'swarm-key', 'generate', keyFile]);
    image = buildImage({ layerSizes: [100_000, 200_000, 300_000], tag: '1' });
    n1 = await start(n1Args, { dataDir: n1DataDir });
    n2 = await start(['--store', 'fs', '--swarm-key', keyFile, '--node-name', 'node2', '--bootstrap', n1.p2p[0], ...TTL]);
    n3 = await start(['--store', 'fs', '--swarm-key', keyFile, '--node-name', 'node3', '--bootstrap', n1.p2p[0], ...TTL]);
    await waitFor('node3 to see both peers', async () => {
      const { out } = await meshctl(n3, ['--json', 'peers']);
      return JSON.parse(out).length === 2;
    });
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('tells node 3 that node 1 holds every blob and the tag of an image pushed to node 1', async () => {
    await skopeo(['copy', `oci:${image.dir}:1`, `docker://${n1.host}/app:1`, '--dest-tls-verify=false']);
    for (const key of [...image.blobs.map((b) => b.digest), 'docker.io/library/app:1']) {
      await waitFor(`node3 to find node1 for ${key}`, async () => (await whoHas(n3, key)).includes(n1.peerId));
    }
    const human = await meshctl(n3, ['who-has', image.layers[0].digest]);
    expect(human.code).toBe(0);
    expect(human.out).toContain(n1.peerId);
    expect(human.out).toContain('node1');
  });

  it('lists images across the mesh with the nodes that hold them, and key counts per peer', async () => {
    const rows = JSON.parse((await meshctl(n3, ['--json', 'ls', '--mesh'])).out);
    expect(rows).toContainEqual({
      name: 'docker.io/library/app:1', digest: image.digest, nodes: [{ id: n1.peerId, name: 'node1' }], fetching: [],
      push: { clock: expect.any(Number), node: n1.peerId },
    });
    const human = (await meshctl(n3, ['ls', '--mesh'])).out;
    expect(human).toMatch(new RegExp(`docker\\.io/library/app:1\\s+${image.digest}\\s+node1\\s+-`));
    const peers = JSON.parse((await meshctl(n3, ['--json', 'peers'])).out) as { id: string; keys?: number }[];
    // Node 1 announces every blob of the image and its tag.
    expect(peers.find((p) => p.id === n1.peerId)?.keys).toBeGreaterThanOrEqual(image.blobs.length + 1);
  });

  it('reports identity, listeners, store, announced keys and republishing in status', async () => {
    // Records live 6 s and are republished every 2 s in this test.
    const status = await waitFor('a republish round', async () => {
      const s = JSON.parse((await meshctl(n1, ['--json', 'status'])).out);
      return s.lastRepublish ? s : undefined;
    });
    expect(status).toMatchObject({ id: n1.peerId, name: 'node1', store: 'containerd', swarmKey: true, registry: n1.url });
    expect(status.announcedKeys).toBeGreaterThanOrEqual(image.blobs.length + 1);
    expect(status.p2p).toContain(n1.p2p[0]);
  });

  it('answers exit status 1 when nobody has a digest, and 2 for a command line it cannot run', async () => {
    const res = await meshctl(n3, ['who-has', `sha256:${'0'.repeat(64)}`]);
    expect(res.code).toBe(1);
    expect(res.out).toContain('nobody has');
    // A script's empty variable is not "nobody has it".
    expect((await meshctl(n3, ['who-has'])).code).toBe(2);
    expect((await meshctl(n3, ['who-has', 'sha256:aa', '--bogus'])).code).toBe(2);
  });

  it('gossips the push to members, and logs it without the blobs it carries', async () => {
    for (const node of [n2, n3]) {
      const line = await waitFor(`${node.url} to receive the push event`, () =>
        node.logs.find((l) => l.msg === 'mesh event' && (l.event as { image?: string })?.image === 'docker.io/library/app:1' && l.from === n1.peerId));
      expect(line.event).not.toHaveProperty('inline');
      expect(JSON.stringify(line).length).toBeLessThan(1000);
    }
  });

  it('forgets a node that died within the record lifetime, and learns it again when it returns', async () => {
    await n1.stop('SIGKILL');
    const layer = image.layers[1].digest;
    await waitFor('node1 to vanish from who-has', async () => !(await whoHas(n3, layer)).includes(n1.peerId), { timeoutMs: 30_000 });
    n1 = await start([...n1Args, '--bootstrap', n2.p2p[0]], { dataDir: n1DataDir });
    await waitFor('node1 to be back in who-has', async () => (await whoHas(n3, layer)).includes(n1.peerId), { timeoutMs: 30_000 });
  });

  it('keeps out nodes with the wrong swarm key or none', async () => {
    const otherKey = join(dir, 'other.key');
    writeFileSync(otherKey, await run(process.execPath, [MESHCTL, 'swarm-key', 'generate']), { mode: 0o600 });
    const wrong = await start(['--store', 'fs', '--swarm-key', otherKey, '--bootstrap', n2.p2p[0], ...TTL]);
    const open = await start(['--store', 'fs', '--bootstrap', n2.p2p[0], ...TTL]);
    expect(open.logs.some((l) => l.level === 40 && /no --swarm-key/.test(String(l.msg)))).toBe(true);
    // Give them time to try, then push something new to the fleet.
    await new Promise((r) => setTimeout(r, 3000));
    const small = buildImage({ layerSizes: [1000], tag: '2' });
    try {
      await skopeo(['copy', `oci:${small.dir}:2`, `docker://${n2.host}/app:2`, '--dest-tls-verify=false']);
      await waitFor('node3 to receive the second push', () => n3.logs.some((l) => l.msg === 'mesh event' && (l.event as { image?: string })?.image === 'docker.io/library/app:2'));
    } finally {
      rmSync(small.dir, { recursive: true, force: true });
    }
    for (const outsider of [wrong, open]) {
      expect(JSON.parse((await meshctl(outsider, ['--json', 'peers'])).out)).toEqual([]);
      expect(outsider.logs.some((l) => l.msg === 'mesh event')).toBe(false);
      expect(await whoHas(outsider, 'docker.io/library/app:2')).toEqual([]);
    }
    const members = JSON.parse((await meshctl(n2, ['--json', 'peers'])).out).map((p: { id: string }) => p.id);
    expect(members).not.toContain(wrong.peerId);
    expect(members).not.toContain(open.peerId);
  });
});
