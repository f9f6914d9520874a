// Memory of the mirror path (issue 18): meshd B's resident memory (VmRSS) while it streams one large blob
// from peer meshd A to a client, and after many pulls through it. Set up as in mirror-pull.ts: one private
// containerd whose namespaces share no content, meshd A (containerd store, own namespace) holding the blob
// and the images, meshd B (containerd store, fresh namespace) bootstrapped to A with the same swarm key.
//   1. curl GETs the large blob from B's registry the way containerd asks a mirror (`?ns=docker.io`) into
//      /dev/null; B fetches it from A's data plane into its spool, streams it to curl and then stores its own
//      copy in containerd (curl keeps none). B's RSS is read every 100 ms until that copy is stored. For
//      reference: B idle, and Debian's Go docker-registry serving the same blob from its disk (not through a
//      mirror: the same bytes to the same client, the least a registry process can hold);
//   2. `ctr content fetch` into B's namespace, through B only, of distinct small images (own tags, own random
//      layers: every pull resolves a tag and fetches every blob from A); B's RSS after a settle at 10 %,
//      50 % and 100 % of the pulls, and unsettled after each one.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateSwarmKey } from '../src/dht/swarm-key.js';
import { ctr } from '../test/helpers/containerd.js';
import { buildImage, type BuiltImage } from '../test/helpers/oci-image.js';
import { cpuSeconds, rssKb } from '../test/helpers/procfs.js';
import { waitFor } from '../test/helpers/wait.js';
import { curlGet } from './lib/curl.js';
import { pushBlob } from './lib/http.js';
import { sampleRss } from './lib/procs.js';
import { startDockerRegistry, startPrivateContainerd, type MeshdServer, type PrivateContainerd } from './lib/servers.js';
import { mirrorHostsDir, settle, startNodeA, startNodeB } from './mirror-pull.js';
import { writeRandomBlob } from './registry-get.js';
import { skopeoCopy } from './skopeo-push.js';

export interface MemoryOptions {
  work: string;
  blobBytes: number;
  pulls: number;
  /** Layer sizes of each pulled image, bytes. */
  layerSizes: number[];
}

export interface MemoryReport {
  blobBytes: number;
  /** curl's time for the large blob through B. */
  transferSeconds: number;
  /** meshd B, KiB: settled after start, peak from the GET until B stored its copy, settled afterwards; its CPU seconds meanwhile. */
  b: { idleKb: number; peakKb: number; afterKb: number; cpuSeconds: number };
  /** meshd A's peak while it served the blob, KiB. */
  aPeakKb: number;
  /** docker-registry serving the same blob from disk to curl, KiB. */
  registry: { idleKb: number; peakKb: number; seconds: number };
  pulls: {
    count: number;
    imageBytes: number;
    /** B's RSS right after each pull, KiB. */
    afterEachKb: number[];
    /** B's RSS after a settle, at 10 %, 50 % and 100 % of the pulls. */
    checkpoints: { pull: number; kb: number }[];
  };
}

const BLOB_REPO = 'mem/big';
const IMAGE_REPO = 'app';

/** Waits until B logged the blob as fetched from the mesh (B may finish after its client). */
async function fetchedFromMesh(b: MeshdServer, digests: string[]): Promise<void> {
  const missing = () => digests.filter((d) => !b.logs.some((l) => l.msg === 'fetched from the mesh' && l.digest === d));
  await waitFor('meshd B to have fetched the blobs from A', () => missing().length === 0, { timeoutMs: 60_000, intervalMs: 50 })
    .catch(() => {
      throw new Error(`meshd B did not fetch ${missing().join(', ')} from the mesh`);
    });
}

/** Peak RSS of docker-registry serving the blob to curl, and its idle RSS before. */
async function registryReference(blob: { file: string; size: number; digest: string }): Promise<MemoryReport['registry']> {
  const registry = await startDockerRegistry('docker-registry (Go)');
  try {
    await pushBlob(registry.url, BLOB_REPO, blob.file, blob.size, blob.digest, { monolithicPost: false });
    await settle(registry.pids);
    const pid = registry.pids[0];
    const idleKb = await rssKb(pid);
    const sampler = sampleRss(pid);
    const got = await curlGet(`${registry.url}/v2/${BLOB_REPO}/blobs/${blob.digest}`);
    const peakKb = await sampler.stop();
    if (got.status !== 200 || got.bytes !== blob.size) throw new Error(`docker-registry GET: ${got.status}, ${got.bytes} of ${blob.size} B`);
    return { idleKb, peakKb, seconds: got.seconds };
  } finally {
    await registry.stop();
  }
}

/** The large blob through B into /dev/null; B's peak until it has stored its own copy. */
async function largeBlob(containerd: PrivateContainerd, a: MeshdServer, b: MeshdServer, ns: string, blob: { size: number; digest: string }) {
  const sampleA = sampleRss(a.pids[0]);
  const sampleB = sampleRss(b.pids[0]);
  const cpuBefore = await cpuSeconds(b.pids);
  const got = await curlGet(`${b.url}/v2/${BLOB_REPO}/blobs/${blob.digest}?ns=docker.io`);
  if (got.status !== 200 || got.bytes !== blob.size) throw new Error(`GET through meshd B: ${got.status}, ${got.bytes} of ${blob.size} B`);
  await fetchedFromMesh(b, [blob.digest]);
  const aPeakKb = await sampleA.stop();
  await waitFor('meshd B to store its copy of the blob', async () => (await ctr(containerd.socket, ['-n', ns, 'content', 'ls', '-q'])).includes(blob.digest),
    { timeoutMs: 120_000, intervalMs: 200 });
  return { seconds: got.seconds, aPeakKb, peakKb: await sampleB.stop(), cpuSeconds: (await cpuSeconds(b.pids)) - cpuBefore };
}

export async function benchMirrorMemory(opts: MemoryOptions, say: (line: string) => void): Promise<MemoryReport> {
  const work = join(opts.work, 'memory');
  await mkdir(work, { recursive: true });
  const stops: (() => Promise<void>)[] = [];
  try {
    const file = join(work, 'blob.bin');
    say(`writing a ${opts.blobBytes >> 20} MiB random blob, building ${opts.pulls} images of ${opts.layerSizes.length} layers…`);
    const blob = { file, size: opts.blobBytes, digest: await writeRandomBlob(file, opts.blobBytes) };
    const images: BuiltImage[] = [];
    for (let i = 0; i < opts.pulls; i++) images.push(buildImage({ layerSizes: opts.layerSizes, tag: `p${i}`, dir: join(work, `image-${i}`) }));

    say('docker-registry serving the blob (reference)…');
    const registry = await registryReference(blob);

    say('starting containerd (isolated namespaces) and meshd A; pushing the blob and the images to A…');
    const containerd = await startPrivateContainerd();
    stops.push(() => containerd.stop());
    const keyFile = join(work, 'swarm.key');
    await writeFile(keyFile, generateSwarmKey(), { mode: 0o600 });
    const mesh = await startNodeA(containerd, [images[0]], keyFile, []);
    stops.push(() => mesh.a.stop());
    const { a } = mesh;
    await pushBlob(a.url, BLOB_REPO, blob.file, blob.size, blob.digest);
    for (const image of images.slice(1)) await skopeoCopy(image.dir, image.tag, a.host, IMAGE_REPO);
    // A announces what it holds before B looks for it.
    await settle([...a.pids, ...containerd.pids]);

    say('starting meshd B (bootstrap to A, same swarm key)…');
    const { b, ns } = await startNodeB(containerd, mesh);
    stops.push(() => b.stop());
    const idleKb = await rssKb(b.pids[0]);
    say(`  meshd B idle: ${(idleKb / 1024).toFixed(1)} MiB; GET of the blob through B (curl -o /dev/null)…`);
    const big = await largeBlob(containerd, a, b, ns, blob);
    await settle([...b.pids, ...containerd.pids]);
    const afterKb = await rssKb(b.pids[0]);
    say(`  ${big.seconds.toFixed(1)} s; meshd B peak ${(big.peakKb / 1024).toFixed(1)} MiB, ${(afterKb / 1024).toFixed(1)} MiB after`);

    const hosts = await mirrorHostsDir(work, ns, b.url);
    const at = new Set([Math.max(1, Math.round(opts.pulls / 10)), Math.max(1, Math.round(opts.pulls / 2)), opts.pulls]);
    const afterEachKb: number[] = [];
    const checkpoints: { pull: number; kb: number }[] = [];
    say(`${opts.pulls} pulls of distinct images through B (ctr content fetch)…`);
    for (let i = 0; i < opts.pulls; i++) {
      const image = images[i];
      await ctr(containerd.socket, ['-n', ns, 'content', 'fetch', '--hosts-dir', hosts, `docker.io/library/${IMAGE_REPO}:${image.tag}`]);
      await fetchedFromMesh(b, image.blobs.map((x) => x.digest));
      afterEachKb.push(await rssKb(b.pids[0]));
      if (!at.has(i + 1)) continue;
      await settle([...b.pids, ...containerd.pids]);
      checkpoints.push({ pull: i + 1, kb: await rssKb(b.pids[0]) });
      say(`  after pull ${i + 1}: meshd B ${(checkpoints.at(-1)!.kb / 1024).toFixed(1)} MiB`);
    }
    return {
      blobBytes: opts.blobBytes,
      transferSeconds: big.seconds,
      b: { idleKb, peakKb: big.peakKb, afterKb, cpuSeconds: big.cpuSeconds },
      aPeakKb: big.aPeakKb,
      registry,
      pulls: { count: opts.pulls, imageBytes: images[0].blobs.reduce((n, x) => n + x.size, 0), afterEachKb, checkpoints },
    };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}
