// Disk keeping on the embedded store, with a real meshd and meshctl: with --evict-local, prune takes pushed
// images least recently used first down to the low mark; rm takes an image and its blobs; df follows; the
// last-use times of what left the store are forgotten.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiskUsage, EvictionReport } from '../src/api/admin-types.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { run, skopeo } from './helpers/run.js';

const MESHCTL = new URL('../dist/src/cli/meshctl.js', import.meta.url).pathname;
const MiB = 1 << 20;
const TAGS = ['1', '2', '3'];
const sizeOf = (image: BuiltImage) => image.blobs.reduce((n, b) => n + b.size, 0);

describe('disk keeping on the fs store', () => {
  let meshd: Meshd;
  const images = new Map<string, BuiltImage>();
  const meshctl = (args: string[]) => run(process.execPath, [MESHCTL, '--node', meshd.url, ...args]);

  beforeAll(async () => {
    for (const tag of TAGS) images.set(tag, buildImage({ layerSizes: [2 * MiB], tag }));
    // The high mark is never reached (the checks only note what arrives); prune goes down to the low one.
    const low = sizeOf(images.get('3')!) + MiB;
    meshd = await startMeshd(['--store', 'fs', '--evict-local', '--disk-high', '1GiB', '--disk-low', String(low), '--disk-check-interval', '1s', '--upload-timeout', '5s']);
    for (const tag of TAGS) await skopeo(['copy', `oci:${images.get(tag)!.dir}:${tag}`, `docker://${meshd.host}/app:${tag}`, '--dest-tls-verify=false']);
  });
  afterAll(async () => {
    await meshd?.stop();
    for (const image of images.values()) rmSync(image.dir, { recursive: true, force: true });
  });

  it('shows pushed images in df, and prune evicts the least recently used down to the low mark', async () => {
    const df = JSON.parse(await meshctl(['--json', 'df'])) as DiskUsage;
    expect(df).toMatchObject({ pushed: TAGS.reduce((n, t) => n + sizeOf(images.get(t)!), 0), pulled: 0, replicated: 0, cache: 0, pinned: 0 });
    expect(df.total).toBe(df.pushed);
    expect(df.filesystem!.size).toBeGreaterThan(0);
    expect(df.images.map((i) => i.origin)).toEqual(['pushed', 'pushed', 'pushed']);
    // After the checks noted all three, app:3 is pulled.
    await new Promise((r) => setTimeout(r, 1500));
    expect((await fetch(`${meshd.url}/v2/app/manifests/3`)).status).toBe(200);

    const report = JSON.parse(await meshctl(['--json', 'prune'])) as EvictionReport;
    expect(report.evicted.map((e) => e.image).sort()).toEqual(['docker.io/library/app:1', 'docker.io/library/app:2']);
    expect(report.evicted.every((e) => e.reason === 'prune' && e.copies === 0)).toBe(true);
    expect(report.freed).toBe(sizeOf(images.get('1')!) + sizeOf(images.get('2')!));
    const after = JSON.parse(await meshctl(['--json', 'df'])) as DiskUsage;
    expect(after.total).toBe(sizeOf(images.get('3')!));
    expect(after.watermarks!.measured).toBeLessThanOrEqual(after.watermarks!.low);
    // Only the last copies were left, and eviction said so.
    expect(meshd.logs.filter((l) => String(l.msg).startsWith('evicting though fewer than --min-copies'))).toHaveLength(2);
  });

  it('removes an image with rm, and says when there is nothing to remove', async () => {
    expect(await meshctl(['rm', 'app:3'])).toMatch(/^removed docker\.io\/library\/app:3 \(2\.0MiB\): rm$/m);
    expect((await fetch(`${meshd.url}/v2/app/manifests/3`)).status).toBe(404);
    expect((JSON.parse(await meshctl(['--json', 'df'])) as DiskUsage).total).toBe(0);
    const again = await meshctl(['rm', 'app:3']).then(() => undefined, (err: Error) => err.cause as { code?: number; stdout?: string });
    expect(again).toMatchObject({ code: 1, stdout: expect.stringContaining('kept: docker.io/library/app:3 is not held here') });
  });
});

describe('last-use times without watermarks', () => {
  it('forgets what left the store: the file of last uses does not keep every blob ever held', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'meshd-uses-'));
    const [gone, kept] = ['1', '2'].map((tag) => buildImage({ layerSizes: [MiB], tag }));
    const meshd = await startMeshd(['--store', 'fs'], { dataDir });
    try {
      for (const [image, tag] of [[gone, '1'], [kept, '2']] as const) {
        await skopeo(['copy', `oci:${image.dir}:${tag}`, `docker://${meshd.host}/app:${tag}`, '--dest-tls-verify=false']);
        expect((await fetch(`${meshd.url}/v2/app/manifests/${tag}`)).status).toBe(200);
        for (const blob of image.blobs) expect((await fetch(`${meshd.url}/v2/app/blobs/${blob.digest}`)).status).toBe(200);
      }
      await run(process.execPath, [MESHCTL, '--node', meshd.url, 'rm', 'app:1']);
      expect(await meshd.stop()).toBe(0);
      const uses = Object.keys(JSON.parse(readFileSync(join(dataDir, 'last-use.json'), 'utf8')) as Record<string, number>);
      expect(uses, 'what is still held').toEqual(expect.arrayContaining(['docker.io/library/app:2', ...kept.blobs.map((b) => b.digest)]));
      expect(uses.filter((key) => key === 'docker.io/library/app:1' || gone.blobs.some((b) => b.digest === key)), 'what rm removed').toEqual([]);
    } finally {
      await meshd.stop();
      for (const dir of [dataDir, gone.dir, kept.dir]) rmSync(dir, { recursive: true, force: true });
    }
  });
});
