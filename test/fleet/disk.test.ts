// Disk keeping on real hosts. h3 has watermarks. It holds an image only h1 also holds (the oldest), then
// images every host holds, one of which a container was created from and one pulled since; when the last
// arrives and takes it over the high mark, h3 evicts the least recently used image that is neither the
// container's nor held by too few others. df on h2 adds up what it was sent by replication, pulled through
// the mirror and cached; rm --mesh reaches every host, but not a container's image.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskUsage, EvictionReport, FleetEvent, MeshImageRow } from '../../src/api/admin-types.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { Fleet, REGISTRY_ADDR, waitFor, type FleetHost } from './index.js';

const MiB = 1 << 20;
const SHARED = ['a', 'b', 'c', 'e'];
const sizeOf = (image: BuiltImage) => image.blobs.reduce((n, b) => n + b.size, 0);
const nameOf = (tag: string) => `docker.io/library/app:${tag}`;

async function holds(host: FleetHost, tag: string): Promise<boolean> {
  return (await host.ctr(['images', 'ls', '-q'])).split('\n').includes(nameOf(tag));
}

describe('disk: df, watermarks, rm', () => {
  let fleet: Fleet;
  const images = new Map<string, BuiltImage>();

  beforeAll(async () => {
    for (const tag of [...SHARED, 'solo', 'pulled', 'cached']) images.set(tag, buildImage({ layerSizes: [(tag === 'c' ? 6 : 4) * MiB], tag }));
    const size = (tag: string) => sizeOf(images.get(tag)!);
    // Over the high mark only once shared-e arrives; below the low mark after evicting any one image but e.
    const all = [...SHARED, 'solo'].reduce((n, t) => n + size(t), 0);
    const high = all - Math.floor(size('e') / 2);
    const low = all - Math.floor(size('c') / 2) - 1;
    fleet = await Fleet.up(3, {
      reconcileInterval: '1s',
      waitFor: 'full-mesh',
      meshdArgs: (i) => [
        // h2 copies the shared images only: `solo` is then held by h1 (pushed) and h3 alone.
        ...(i === 2 ? ['--replicate', 'image=docker.io/library/app:shared-*'] : []),
        ...(i === 3 ? ['--disk-high', String(high), '--disk-low', String(low), '--disk-check-interval', '1s'] : []),
      ],
    });
  }, 240_000);
  afterAll(async () => {
    await fleet?.down();
    for (const image of images.values()) rmSync(image.dir, { recursive: true, force: true });
  });

  const push = (host: FleetHost, tag: string, as = tag) =>
    host.skopeo(['copy', `oci:${images.get(tag)!.dir}:${tag}`, `docker://${REGISTRY_ADDR}/app:${as}`, '--dest-tls-verify=false']);

  it('evicts least recently used first, never a container\'s image nor the last copies, and logs each eviction', async () => {
    const [h1, h2, h3] = fleet.hosts;
    await push(h1, 'solo');
    await waitFor('h3 to copy solo', () => holds(h3, 'solo'), { timeoutMs: 60_000 });
    for (const tag of ['a', 'b', 'c']) await push(h1, tag, `shared-${tag}`);
    for (const h of [h2, h3]) {
      for (const tag of ['a', 'b', 'c']) await waitFor(`${h.name} to copy shared-${tag}`, () => holds(h, `shared-${tag}`), { timeoutMs: 60_000 });
    }
    // A container made from shared-b; shared-a pulled on h3 after the evictor noted all of them as they arrived.
    await h3.ctr(['containers', 'create', nameOf('shared-b'), 'pin-b']);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await h3.http('/v2/app/manifests/shared-a')).status).toBe(200);

    await push(h1, 'e', 'shared-e');
    await waitFor('h3 to copy shared-e', () => holds(h3, 'shared-e'), { timeoutMs: 60_000 });
    await waitFor('h3 to evict shared-c', async () => !(await holds(h3, 'shared-c')), { timeoutMs: 30_000 });
    for (const tag of ['solo', 'shared-a', 'shared-b', 'shared-e']) expect(await holds(h3, tag)).toBe(true);

    const content = await h3.ctr(['content', 'ls', '-q']);
    expect(content).not.toContain(images.get('c')!.layers[0].digest);
    const df = await h3.meshctlJson<DiskUsage>(['df']);
    expect(df.watermarks!.measured).toBeLessThanOrEqual(df.watermarks!.low);
    expect(df.images.find((i) => i.name === nameOf('shared-b'))).toMatchObject({ origin: 'replicated', pinned: true });
    expect(df.pinned).toBe(sizeOf(images.get('b')!));

    const evicted = h3.logLines().filter((l) => l.msg === 'evicted');
    expect(evicted).toEqual([expect.objectContaining({ image: nameOf('shared-c'), reason: 'above the high watermark', copies: 2, bytes: sizeOf(images.get('c')!) })]);
    const events = JSON.parse((await h3.http('/_mesh/v1/events?since=0')).body) as FleetEvent[];
    expect(events.filter((e) => e.kind === 'evicted').map((e) => e.image)).toEqual([nameOf('shared-c')]);
    // Evicted images are no longer h3's: it stops announcing them, and inventories (ls --mesh) stop listing it as a holder.
    const layerC = images.get('c')!.layers[0].digest;
    await waitFor('h3 to stop announcing shared-c', async () =>
      !(await h3.whoHas(layerC)).some((p) => p.self) && !(await h3.whoHas(nameOf('shared-c'))).some((p) => p.self));
    await waitFor('ls --mesh to drop h3 from shared-c', async () => {
      const rows = await h1.meshctlJson<MeshImageRow[]>(['ls', '--mesh']);
      return !rows.find((r) => r.name === nameOf('shared-c'))?.nodes.some((n) => n.name === h3.name);
    });
  }, 240_000);

  it('df on h2 adds up what replication brought, what its users pulled and what the mirror cached', async () => {
    const [h1, h2] = fleet.hosts;
    // Straight into h1's containerd: no push, so nothing replicates; h2 gets them only by asking.
    const pulled = await h1.loadImage(images.get('pulled')!);
    const cached = await h1.loadImage(images.get('cached')!, { repo: 'docker.io/library/other' });
    const cachedLayer = images.get('cached')!.layers[0];
    // A name goes out with its image's content, never before it: seen, every blob can be found.
    for (const name of [pulled, cached]) {
      await waitFor(`h2 to see h1 hold ${name}`, async () => (await h2.whoHas(name)).some((p) => p.id === h1.peerId));
    }
    const blob = await h2.http(`/v2/other/blobs/${cachedLayer.digest}`);
    expect(blob.status).toBe(200);
    // Stored once it has been verified, which may be just after the answer ended.
    await waitFor('h2 to keep the layer it served', async () => (await h2.ctr(['content', 'ls', '-q'])).includes(cachedLayer.digest));
    const hosts = join(h2.dir, 'certs.d');
    mkdirSync(join(hosts, '_default'), { recursive: true });
    writeFileSync(join(hosts, '_default', 'hosts.toml'), 'server = "http://127.0.0.1:9"\n[host."http://127.0.0.1:5000"]\n  capabilities = ["pull", "resolve"]\n');
    await h2.ctr(['images', 'pull', '--hosts-dir', hosts, pulled], { timeoutMs: 60_000 });

    const df = await h2.meshctlJson<DiskUsage>(['df']);
    expect(df.pushed).toBe(0);
    expect(df.pinned).toBe(0);
    expect(df.replicated).toBe(SHARED.reduce((n, t) => n + sizeOf(images.get(t)!), 0));
    expect(df.pulled).toBe(sizeOf(images.get('pulled')!));
    expect(df.cache).toBe(cachedLayer.size);
    expect(df.total).toBe(df.replicated + df.pulled + df.cache);
    const listed = (await h2.ctr(['content', 'ls'])).split('\n').slice(1).filter(Boolean);
    expect(listed.length).toBe(SHARED.length * 3 + 3 + 1);
    // Members tell their totals in their inventories (at most half a minute old; h2's changed since the first test).
    const totals = { total: df.total, pinned: df.pinned, pushed: df.pushed, pulled: df.pulled, replicated: df.replicated, cache: df.cache };
    await waitFor('h1 to see h2\'s disk totals', async () =>
      isDeepStrictEqual((await h1.peers()).find((p) => p.id === h2.peerId)?.disk, totals), { timeoutMs: 40_000 });
    const h1df = await h1.meshctlJson<DiskUsage>(['df']);
    expect(h1df.pushed).toBe([...SHARED, 'solo'].reduce((n, t) => n + sizeOf(images.get(t)!), 0));
    expect(h1df.total).toBe(h1df.pushed + h1df.pulled + h1df.replicated + h1df.cache + h1df.pinned);
  }, 120_000);

  it('rm --mesh removes an image from every host, except where a container uses it', async () => {
    const [h1, h2, h3] = fleet.hosts;
    const removed = await h1.meshctlJson<EvictionReport>(['rm', '--mesh', 'app:shared-a']);
    expect(removed).toMatchObject({ published: true, evicted: [{ image: nameOf('shared-a'), reason: 'rm --mesh' }] });
    for (const h of fleet.hosts) await waitFor(`${h.name} to remove shared-a`, async () => !(await holds(h, 'shared-a')), { timeoutMs: 20_000 });
    await waitFor('ls --mesh to forget shared-a', async () =>
      !(await h2.meshctlJson<MeshImageRow[]>(['ls', '--mesh'])).some((r) => r.name === nameOf('shared-a')));

    const local = await h3.meshctl(['rm', 'app:shared-b']);
    expect(local.code).toBe(1);
    expect(local.stdout).toContain(`kept: a container on ${h3.name} uses ${nameOf('shared-b')}`);
    await h1.meshctl(['rm', '--mesh', 'app:shared-b']);
    for (const h of [h1, h2]) await waitFor(`${h.name} to remove shared-b`, async () => !(await holds(h, 'shared-b')), { timeoutMs: 20_000 });
    await waitFor('h3 to say it keeps shared-b', () => h3.logLines().some((l) => l.msg === 'rm --mesh: kept' && l.image === nameOf('shared-b')));
    expect(await holds(h3, 'shared-b')).toBe(true);
  }, 120_000);
});
