// The objects the fuzzer finds in the registry: blobs (one of 16 MiB), manifests, an index, a referrer and tags,
// pushed over plain HTTP. Their bytes come from a fixed seed, so digests are the same in every run.
import { createHash } from 'node:crypto';
import { MediaType } from '../../src/oci/manifest.js';
import { Rng } from './prng.js';

export interface Blob {
  digest: string;
  size: number;
  mediaType: string;
  bytes: Buffer;
}

export interface World {
  /** Only read by the fuzzer: everything pushed there must still read back at the end. */
  keep: string;
  /** Repositories the fuzzer may write to and delete from (they hold the same images). */
  repos: string[];
  config: Blob;
  /** Config and layers, small to large; the last one is 16 MiB. */
  blobs: Blob[];
  big: Blob;
  /** Image manifest (with every layer), a small Docker manifest, an index of both, a referrer of the first. */
  manifests: Blob[];
  tags: string[];
  /** Image names as the store keeps them (what the peer data plane is asked for). */
  images: string[];
}

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const LAYER = 'application/vnd.oci.image.layer.v1.tar+gzip';

function blob(bytes: Buffer, mediaType: string): Blob {
  return { bytes, size: bytes.length, digest: sha(bytes), mediaType };
}

const json = (doc: unknown, mediaType: string) => blob(Buffer.from(JSON.stringify(doc)), mediaType);
export const descriptor = ({ mediaType, digest, size }: Blob) => ({ mediaType, digest, size });

async function push(url: string, path: string, init: RequestInit): Promise<void> {
  const res = await fetch(`${url}${path}`, init);
  await res.arrayBuffer();
  if (res.status !== 201) throw new Error(`seeding: ${init.method} ${path} answered ${res.status}`);
}

export async function seedWorld(url: string): Promise<World> {
  const rng = new Rng(0x5eed);
  const keep = 'fuzz/keep';
  const repos = ['fuzz/app', 'fz', 'ghcr.io/fuzz/app', 'fuzz/a/b/c'];
  const config = json({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, 'application/vnd.oci.image.config.v1+json');
  const empty = blob(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  // The 300 KiB layer is above the size the data plane sends to one patient peer at a time.
  const layers = [1024, 100 << 10, 300 << 10].map((n) => blob(rng.bytes(n), LAYER));
  const big = blob(rng.bytes(16 << 20), LAYER);
  for (const b of [config, empty, ...layers, big]) {
    await push(url, `/v2/${keep}/blobs/uploads/?digest=${b.digest}`, { method: 'POST', body: new Uint8Array(b.bytes) });
  }
  const image = json({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: descriptor(config), layers: [...layers, big].map(descriptor) }, MediaType.ociManifest);
  const small = json({ schemaVersion: 2, mediaType: MediaType.dockerManifest, config: { ...descriptor(config), mediaType: 'application/vnd.docker.container.image.v1+json' },
    layers: [{ ...descriptor(layers[0]), mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip' }] }, MediaType.dockerManifest);
  const index = json({ schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [
    { ...descriptor(image), platform: { architecture: 'amd64', os: 'linux' } },
    { ...descriptor(small), platform: { architecture: 'arm64', os: 'linux' } },
  ] }, MediaType.ociIndex);
  const referrer = json({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType: 'application/vnd.fuzz.signature',
    config: descriptor(empty), layers: [descriptor(layers[0])], subject: descriptor(image) }, MediaType.ociManifest);
  const tagged: [Blob, string][] = [[image, 'v1'], [image, 'latest'], [small, 'small'], [index, 'multi'], [referrer, referrer.digest]];
  for (const repo of [keep, ...repos]) {
    for (const [m, ref] of tagged) {
      await push(url, `/v2/${repo}/manifests/${ref}`, { method: 'PUT', body: new Uint8Array(m.bytes), headers: { 'content-type': m.mediaType } });
    }
  }
  const images = ['docker.io/fuzz/keep:v1', 'docker.io/fuzz/keep:multi', 'docker.io/fuzz/app:latest', 'ghcr.io/fuzz/app:small',
    'docker.io/library/fz:v1', `docker.io/fuzz/keep@${referrer.digest}`];
  return { keep, repos, config, blobs: [config, empty, ...layers, big], big, manifests: [image, small, index, referrer],
    tags: ['v1', 'latest', 'small', 'multi'], images };
}
