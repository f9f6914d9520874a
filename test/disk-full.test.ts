// A full disk under a real meshd, on each store: the embedded store's data dir, or a private
// containerd's content dir, on a 40 MiB tmpfs. Every blob that ever got 201 must re-hash to its
// digest, a full disk must answer 507 and free the upload at once, and once space is freed (by
// deleting an image) pushes must work again.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerd, type TestContainerd } from './helpers/containerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { run } from './helpers/run.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1 << 20;
const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Where the store keeps blobs and uploads, on the small tmpfs at `dir`. */
interface Layout { dir: string; blobs: string; uploads: string }

let layout: Layout;
let dir: string;
let meshd: Meshd;
/** Every digest the registry answered 201 for, and still holds. */
const accepted = new Set<string>();
const api = (path: string, init?: RequestInit) => fetch(`${meshd.url}${path}`, init);
const free = async () => (await statfs(dir)).bavail * (await statfs(dir)).bsize;

async function push(data: Buffer<ArrayBuffer>): Promise<Response> {
  const res = await api(`/v2/fill/blobs/uploads/?digest=${sha(data)}`, { method: 'POST', body: data });
  if (res.status === 201) accepted.add(sha(data));
  return res;
}

async function expectDiskFull(res: Response): Promise<void> {
  expect(res.status).toBe(507);
  const body = await res.json();
  expect(body.errors[0].message).toMatch(/no space left/);
  expect(JSON.stringify(body)).not.toContain(dir);
}

/** Every blob that got 201, read back through the registry and from the disk, hashes to its digest. */
async function expectEveryAcceptedBlobIntact(): Promise<void> {
  for (const digest of accepted) {
    const served = Buffer.from(await (await api(`/v2/fill/blobs/${digest}`)).arrayBuffer());
    expect(sha(served), `served ${digest}`).toBe(digest);
    const onDisk = await readFile(join(layout.blobs, digest.slice(7)));
    expect(sha(onDisk), `stored ${digest}`).toBe(digest);
  }
}

/** Pushes filler blobs until less than `leave` bytes are free; returns their descriptors. */
async function fill(leave: number): Promise<{ digest: string; size: number }[]> {
  const blobs: { digest: string; size: number }[] = [];
  while ((await free()) > leave + 4 * MiB) {
    const data = randomBytes(Math.min(4 * MiB, (await free()) - leave - 2 * MiB));
    const res = await push(data);
    expect(res.status).toBe(201);
    blobs.push({ digest: sha(data), size: data.length });
  }
  return blobs;
}

/** Tags the blobs as one image, so that deleting the tag frees them; returns every blob the image references. */
async function tagImage(tag: string, layers: { digest: string; size: number }[]): Promise<{ digest: string }[]> {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', tag }));
  expect((await push(config)).status).toBe(201);
  const manifest = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
  };
  const res = await api(`/v2/fill/manifests/${tag}`, {
    method: 'PUT', headers: { 'content-type': manifest.mediaType }, body: JSON.stringify(manifest),
  });
  expect(res.status).toBe(201);
  return [manifest.config, ...layers];
}

async function deleteTag(tag: string, layers: { digest: string }[]): Promise<void> {
  expect((await api(`/v2/fill/manifests/${tag}`, { method: 'DELETE' })).status).toBe(202);
  for (const l of layers) accepted.delete(l.digest);
  // --gc-delay 1s: the blobs only that image referenced go a second later.
  await waitFor('the deleted image\'s blobs to be freed', async () =>
    (await Promise.all(layers.map(async (l) => (await api(`/v2/fill/blobs/${l.digest}`, { method: 'HEAD' })).status === 404))).every(Boolean));
}

const mountTmpfs = async (at: string) => {
  await mkdir(at, { recursive: true });
  await run('mount', ['-t', 'tmpfs', '-o', 'size=40m', 'tmpfs', at]);
};

const stores: [string, () => Promise<{ layout: Layout; meshd: Meshd; stop(): Promise<void> }>][] = [
  ['the embedded store', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'lm-disk-full-'));
    await mountTmpfs(dir);
    const stop = async () => {
      await run('umount', [dir]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    };
    const layout = { dir, blobs: join(dir, 'store', 'blobs', 'sha256'), uploads: join(dir, 'store', 'uploads') };
    try {
      return { layout, meshd: await startMeshd(['--store', 'fs', '--gc-delay', '1s', '--log-level', 'info'], { dataDir: dir }), stop };
    } catch (err) {
      await stop();
      throw err;
    }
  }],
  ['containerd', async () => {
    let content = '';
    const containerd: TestContainerd = await startContainerd({ prepare: async ({ root }) => {
      content = join(root, 'io.containerd.content.v1.content');
      await mountTmpfs(content);
    } });
    const layout = { dir: content, blobs: join(content, 'blobs', 'sha256'), uploads: join(content, 'ingest') };
    try {
      const meshd = await startMeshd(['--store', 'containerd', '--containerd-socket', containerd.socket, '--log-level', 'info']);
      return { layout, meshd, stop: () => containerd.stop() };
    } catch (err) {
      await containerd.stop();
      throw err;
    }
  }],
];

describe.each(stores)('a full disk under %s', (_, start) => {
  let stop: () => Promise<void>;
  beforeAll(async () => {
    accepted.clear();
    ({ layout, meshd, stop } = await start());
    dir = layout.dir;
  });
  afterAll(async () => {
    await meshd?.stop();
    await stop?.();
  });

  it('never stores a wrong byte from concurrent monolithic pushes, and answers 507 for what does not fit', async () => {
    for (let round = 0; round < 3; round++) {
      const filler = await fill(8 * MiB);
      const [a, b] = [randomBytes(8 * MiB), randomBytes(8 * MiB)];
      const results = await Promise.all([push(a), push(b)]);
      for (const res of results) {
        if (res.status !== 201) await expectDiskFull(res);
      }
      expect(results.some((r) => r.status === 507), `round ${round}: two 8 MiB blobs fit in 8 MiB`).toBe(true);
      await expectEveryAcceptedBlobIntact();
      // A failed upload leaves nothing behind, at once.
      expect(await readdir(layout.uploads).catch(() => [])).toEqual([]);
      expect((await api('/v2/')).status).toBe(200);
      await deleteTag(`round${round}`, await tagImage(`round${round}`, filler));
    }
  });

  it('ends a chunked upload that hits the full disk: the space comes back at once and a resumed PUT finds no upload', async () => {
    await fill(6 * MiB);
    const before = await free();
    const start = await api('/v2/fill/blobs/uploads/', { method: 'POST' });
    const location = start.headers.get('location')!;
    const data = randomBytes(12 * MiB);
    let status = 202;
    let offset = 0;
    for (; offset < data.length && status === 202; offset += 2 * MiB) {
      const chunk = data.subarray(offset, offset + 2 * MiB);
      const res = await api(location, { method: 'PATCH', body: chunk, headers: { 'content-range': `${offset}-${offset + chunk.length - 1}` } });
      status = res.status;
      if (status !== 202) await expectDiskFull(res);
    }
    expect(status).toBe(507);
    expect(await readdir(layout.uploads).catch(() => [])).toEqual([]);
    expect(await free()).toBeGreaterThanOrEqual(before - MiB);
    const resumed = await api(`${location}?digest=${sha(data)}`, { method: 'PUT', body: data.subarray(offset) });
    expect(resumed.status).toBe(404);
    expect((await resumed.json()).errors[0].code).toBe('BLOB_UPLOAD_UNKNOWN');
    expect((await api(`/v2/fill/blobs/${sha(data)}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('takes pushes again once an image is deleted, and every blob it ever accepted is intact', async () => {
    const layers = await Promise.all([...accepted].map(async (digest) => ({
      digest, size: Number((await api(`/v2/fill/blobs/${digest}`, { method: 'HEAD' })).headers.get('content-length')),
    })));
    const data = randomBytes(Math.max(4 * MiB, (await free()) + MiB));
    await expectDiskFull(await push(data));
    await deleteTag('everything', await tagImage('everything', layers));
    expect((await push(data)).status).toBe(201);
    await expectEveryAcceptedBlobIntact();
    expect(meshd.proc.exitCode).toBeNull();
  });
});
