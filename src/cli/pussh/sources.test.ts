// Image sources without any daemon: docker save archives in both layouts (made here with tar-stream),
// an OCI layout directory, and the Docker daemon's export API played by a fake server on a unix socket.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readBounded } from '../../oci/limits.js';
import { openSource } from './open-source.js';
import { planPush } from './plan.js';
import { parseImageRef } from './refs.js';
import { DOCKER_LAYER, DOCKER_LAYER_GZIP, archiveSource } from './source-archive.js';
import { openDockerDaemon } from './source-docker.js';
import type { ImageSource } from './source.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

interface TarEntry { name: string; data?: Buffer; linkname?: string }

async function tarOf(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  for (const e of entries) {
    if (e.linkname) p.entry({ name: e.name, type: 'symlink', linkname: e.linkname });
    else p.entry({ name: e.name }, e.data!);
  }
  p.finalize();
  return readBounded(p as unknown as AsyncIterable<Uint8Array>, 1 << 30);
}

const layer1 = randomBytes(3000);
const layer2 = gzipSync(randomBytes(2000));
const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer1)] } }));
const otherConfig = Buffer.from(JSON.stringify({ architecture: 'arm64', os: 'linux' }));

/** `docker save app:1 other:2` before Docker 25: the second image shares a layer, stored once, linked. */
function classicArchive(): Promise<Buffer> {
  return tarOf([
    { name: 'l1/layer.tar', data: layer1 },
    { name: 'l2/layer.tar', data: layer2 },
    { name: 'l3/layer.tar', linkname: '../l1/layer.tar' },
    { name: '../escape', data: Buffer.from('never written outside') },
    { name: `${sha(config).slice(7)}.json`, data: config },
    { name: `${sha(otherConfig).slice(7)}.json`, data: otherConfig },
    { name: 'manifest.json', data: Buffer.from(JSON.stringify([
      { Config: `${sha(config).slice(7)}.json`, RepoTags: ['app:1'], Layers: ['l1/layer.tar', 'l2/layer.tar'] },
      { Config: `${sha(otherConfig).slice(7)}.json`, RepoTags: ['docker.io/library/other:2'], Layers: ['l3/layer.tar'] },
    ])) },
  ]);
}

/** An OCI layout as Docker 25+ saves it (with its manifest.json beside, which must be ignored). */
function ociLayoutEntries(): { entries: TarEntry[]; manifestDigest: string } {
  const desc = (mediaType: string, b: Buffer) => ({ mediaType, digest: sha(b), size: b.length });
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: desc('application/vnd.oci.image.config.v1+json', config),
    layers: [desc('application/vnd.oci.image.layer.v1.tar', layer1)],
  }));
  const blob = (b: Buffer) => ({ name: `blobs/sha256/${sha(b).slice(7)}`, data: b });
  return {
    manifestDigest: sha(manifest),
    entries: [
      { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
      blob(layer1), blob(config), blob(manifest),
      { name: 'index.json', data: Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{
        ...desc('application/vnd.oci.image.manifest.v1+json', manifest),
        annotations: { 'io.containerd.image.name': 'docker.io/library/app:1', 'org.opencontainers.image.ref.name': '1' },
      }] })) },
      { name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: 'nowhere.json', RepoTags: ['app:1'], Layers: [] }])) },
    ],
  };
}

/** ociLayoutEntries written into `dir` as an OCI layout directory. */
async function writeLayout(dir: string): Promise<{ manifestDigest: string }> {
  const { entries, manifestDigest } = ociLayoutEntries();
  for (const e of entries) {
    await mkdir(join(dir, e.name, '..'), { recursive: true });
    await writeFile(join(dir, e.name), e.data!);
  }
  return { manifestDigest };
}

async function bytesOf(source: ImageSource, digest: string): Promise<Buffer> {
  return readBounded(await source.open(digest), 1 << 30);
}

const opened: ImageSource[] = [];
const keep = (s: ImageSource) => (opened.push(s), s);
afterAll(async () => {
  for (const s of opened) await s.close();
});

describe('docker save archives, classic layout', () => {
  it('become a Docker schema 2 manifest whose layers are the tars as they are', async () => {
    const source = keep(await archiveSource(Readable.from([await classicArchive()]), 'test', { image: parseImageRef('app:1') }));
    const plan = await planPush(source);
    const manifest = JSON.parse(plan.manifests[0].body.toString());
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(manifest.config).toEqual({ mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha(config), size: config.length });
    expect(manifest.layers).toEqual([
      { mediaType: DOCKER_LAYER, digest: sha(layer1), size: layer1.length },
      { mediaType: DOCKER_LAYER_GZIP, digest: sha(layer2), size: layer2.length },
    ]);
    expect(source.root.digest).toBe(sha(plan.manifests[0].body));
    expect(await bytesOf(source, sha(layer2))).toEqual(layer2);
    expect(await bytesOf(source, source.root.digest)).toEqual(plan.manifests[0].body);
  });

  it('pick the image by name, follow links to shared layers, and clean up after themselves', async () => {
    const tmp = await mkdtemp(join(tmpdir(), 'archive-tmp-'));
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp; // where the archive is unpacked
    try {
      const source = await archiveSource(Readable.from([await classicArchive()]), 'test', { ref: 'other:2' });
      const plan = await planPush(source);
      expect(plan.blobs.map((b) => b.descriptor.digest)).toEqual([sha(otherConfig), sha(layer1)]);
      expect(await bytesOf(source, sha(layer1))).toEqual(layer1);
      expect(await readdir(tmp)).toHaveLength(1);
      await source.close();
      expect(await readdir(tmp)).toEqual([]);
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(tmp, { recursive: true, force: true });
    }
  });

  it('say which images they hold when the name matches none', async () => {
    await expect(archiveSource(Readable.from([await classicArchive()]), 'test', { image: parseImageRef('nope:1') }))
      .rejects.toMatchObject({ kind: 'image-not-found', message: expect.stringMatching(/app:1, docker.io\/library\/other:2/) });
  });
});

describe('docker save archives with an OCI layout inside', () => {
  it('are read as the layout, keeping the original manifest', async () => {
    const { entries, manifestDigest } = ociLayoutEntries();
    const source = keep(await archiveSource(Readable.from([await tarOf(entries)]), 'test', { image: parseImageRef('app:1') }));
    expect(source.root.digest).toBe(manifestDigest);
    const plan = await planPush(source);
    expect(plan.blobs.map((b) => b.descriptor.digest).sort()).toEqual([sha(config), sha(layer1)].sort());
  });
});

describe('an OCI layout directory', () => {
  it('is read by tag (oci:DIR:TAG) and says so when the tag is not there', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oci-src-'));
    try {
      const { manifestDigest } = await writeLayout(dir);
      const source = keep(await openSource({ from: `oci:${dir}:1`, ref: parseImageRef('other:9'), containerdSocket: '/nonexistent', namespace: 'default' }));
      expect(source.root.digest).toBe(manifestDigest);
      await expect(openSource({ from: `oci:${dir}:2`, ref: parseImageRef('app:2'), containerdSocket: '/nonexistent', namespace: 'default' }))
        .rejects.toMatchObject({ kind: 'image-not-found' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('an image pushed by digest', () => {
  it('is the manifest with that digest, or not found: never another image of the layout or a rebuilt manifest', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'oci-src-'));
    try {
      const { manifestDigest } = await writeLayout(dir);
      const open = (from: string, ref: string) => openSource({ from, ref: parseImageRef(ref), containerdSocket: '/nonexistent', namespace: 'default' });
      expect(keep(await open(`oci:${dir}`, `app@${manifestDigest}`)).root.digest).toBe(manifestDigest);
      expect(keep(await open(`oci:${dir}`, `elsewhere/named@${manifestDigest}`)).root.digest).toBe(manifestDigest);
      const other = `sha256:${'1'.repeat(64)}`;
      await expect(open(`oci:${dir}`, `app@${other}`)).rejects.toMatchObject({ kind: 'image-not-found', message: expect.stringContaining(other) });
      const archive = join(dir, 'saved.tar'); // one image: docker save of app:1
      await writeFile(archive, await tarOf([
        { name: 'l1/layer.tar', data: layer1 },
        { name: `${sha(config).slice(7)}.json`, data: config },
        { name: 'manifest.json', data: Buffer.from(JSON.stringify([{ Config: `${sha(config).slice(7)}.json`, RepoTags: ['app:1'], Layers: ['l1/layer.tar'] }])) },
      ]));
      await expect(open(`docker-archive:${archive}`, `app@${other}`)).rejects.toMatchObject({ kind: 'image-not-found', message: expect.stringContaining('push it by tag') });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('the Docker daemon', () => {
  let dir: string;
  let socket: string;
  let server: Server;
  const requests: string[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fake-docker-'));
    socket = join(dir, 'docker.sock');
    const archive = await classicArchive();
    // The two calls pussh makes of Docker's engine API: image inspect, then image export (`docker save`).
    server = createServer((req, res) => {
      requests.push(`${req.method} ${req.url}`);
      if (req.url === '/images/app%3A1/json') return res.end('{"Id":"sha256:x"}');
      if (req.url === '/images/app%3A1/get') {
        res.setHeader('content-type', 'application/x-tar');
        return res.end(archive);
      }
      res.statusCode = 404;
      res.end(JSON.stringify({ message: `No such image: ${decodeURIComponent(req.url!.split('/')[2])}` }));
    });
    await new Promise<void>((r) => server.listen(socket, r));
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('exports the image through its API, read like a docker save archive', async () => {
    const source = keep(await openDockerDaemon({ kind: 'unix', socketPath: socket, description: `docker (${socket})` }, parseImageRef('app:1')));
    expect(requests).toEqual(['GET /images/app%3A1/json', 'GET /images/app%3A1/get']);
    const plan = await planPush(source);
    expect(plan.blobs.map((b) => b.descriptor.digest)).toEqual([sha(config), sha(layer1), sha(layer2)]);
    expect(await bytesOf(source, sha(layer1))).toEqual(layer1);
  });

  it('is where auto looks when containerd is not there, and a missing image names every place looked', async () => {
    const env = { DOCKER_HOST: `unix://${socket}` };
    const source = keep(await openSource({ from: 'auto', ref: parseImageRef('app:1'), containerdSocket: join(dir, 'no-containerd.sock'), namespace: 'default', env }));
    expect(source.description).toBe(`docker (unix://${socket}, from DOCKER_HOST)`);
    await expect(openSource({ from: 'auto', ref: parseImageRef('nope:1'), containerdSocket: join(dir, 'no-containerd.sock'), namespace: 'default', env }))
      .rejects.toMatchObject({ kind: 'image-not-found', message: expect.stringMatching(/not found locally:[^]*no containerd socket[^]*No such image: nope:1/) });
  });
});
