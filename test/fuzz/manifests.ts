// Manifest and index bodies: invalid and deep JSON, wrong schema versions, odd descriptors and subjects,
// index entries whose media type says "manifest" but whose digest is a layer, and a few valid ones.
import { MediaType } from '../../src/oci/manifest.js';
import { MANIFEST_TYPES, oddDigest } from './inputs.js';
import type { Rng } from './prng.js';
import { descriptor, type World } from './world.js';

export interface OddManifest {
  body: Buffer;
  /** Content-Type to send, if any. */
  type?: string;
}

function oddDescriptor(rng: Rng, w: World): unknown {
  const real = () => descriptor(rng.pick([...w.blobs, ...w.manifests]));
  return rng.weighted<unknown>([
    [8, real],
    [3, () => ({ ...real(), size: rng.pick<unknown>([-1, -1e9, 1e20, 2 ** 53, 1.5, '10', null, 0, Number.MAX_VALUE]) })],
    [3, () => ({ ...real(), digest: rng.pick([oddDigest(rng, w), real().digest.toUpperCase(), `sha512:${rng.hex(128)}`]) })],
    [1, () => ({ ...real(), mediaType: rng.pick<unknown>([7, '', null, 'x'.repeat(1000), ...MANIFEST_TYPES]) })],
    [1, () => rng.pick<unknown>([null, 'str', {}, [], 42, { digest: real().digest }])],
    [1, () => ({ ...real(), urls: ['file:///etc/passwd', 'http://127.0.0.1:1/'], annotations: { a: 'b'.repeat(100) } })],
  ]);
}

function deep(rng: Rng): string {
  const depth = rng.pick([1000, 10_000, 100_000]);
  return rng.chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
}

const text = (s: string, type?: string): OddManifest => ({ body: Buffer.from(s), type });
const doc = (d: unknown, type?: string): OddManifest => text(JSON.stringify(d), type);

type Desc = { mediaType: string; digest: string; size: number };

/** `fresh` is a blob that nothing else references (the caller pushes it if the manifest names it). */
export function oddManifest(rng: Rng, w: World, fresh: Desc): OddManifest {
  const [image, small, index] = w.manifests;
  const config = descriptor(w.config);
  const layers = () => w.blobs.slice(2).filter(() => rng.chance(0.6)).map(descriptor);
  const typeOf = (t: string) => (rng.chance(0.8) ? t : rng.pick([undefined, 'application/json', ...MANIFEST_TYPES]));
  const manifestType = rng.pick([MediaType.ociManifest, MediaType.dockerManifest]);
  const indexType = rng.pick([MediaType.ociIndex, MediaType.dockerList]);
  const asManifest = (d: Desc) => ({ ...d, mediaType: rng.pick(MANIFEST_TYPES) });
  return rng.weighted<OddManifest>([
    [4, () => text(rng.pick(['{', '', 'null', '[]', '"x"', '{"schemaVersion":2', '\uFEFF{"schemaVersion":2}', '{"schemaVersion":2}garbage', 'NaN']), typeOf(manifestType))],
    [1, () => ({ body: rng.bytes(rng.int(1, 2000)), type: typeOf(manifestType) })],
    [2, () => text(deep(rng), typeOf(manifestType))],
    [3, () => doc({ schemaVersion: rng.pick<unknown>([1, '2', -2, 1e308, null, 3, [2]]), mediaType: manifestType, config, layers: layers() }, typeOf(manifestType))],
    [6, () => doc({ schemaVersion: 2, mediaType: manifestType, config, layers: layers(), annotations: { fuzz: rng.hex(8) } }, typeOf(manifestType))],
    [5, () => doc({ schemaVersion: 2, mediaType: manifestType, config: oddDescriptor(rng, w),
      layers: Array.from({ length: rng.int(0, 4) }, () => oddDescriptor(rng, w)) }, typeOf(manifestType))],
    [3, () => doc({ schemaVersion: 2, mediaType: indexType, manifests: [image, small, index].filter(() => rng.chance(0.6)).map(descriptor),
      annotations: { fuzz: rng.hex(8) } }, typeOf(indexType))],
    // Entries that claim to be manifests but are any other blob (a registry cannot walk those).
    [4, () => doc({ schemaVersion: 2, mediaType: indexType, manifests: [
      ...(rng.chance(0.5) ? [descriptor(image)] : []), asManifest(rng.chance(0.6) ? fresh : descriptor(rng.pick(w.blobs))),
    ] }, typeOf(indexType))],
    [2, () => doc({ schemaVersion: 2, mediaType: indexType, manifests: Array.from({ length: rng.int(1, 5) }, () => oddDescriptor(rng, w)) }, typeOf(indexType))],
    // Hundreds, not thousands: each entry costs the registry a few file operations (seconds per 2,000 under load).
    [1, () => doc({ schemaVersion: 2, mediaType: indexType, manifests: Array.from({ length: rng.pick([200, 500]) }, () => descriptor(image)) }, indexType)],
    [3, () => doc({ schemaVersion: 2, mediaType: manifestType, artifactType: rng.pick(['application/vnd.fuzz', '', 7]), config, layers: layers(),
      subject: rng.weighted<unknown>([[3, descriptor(image)], [2, () => oddDescriptor(rng, w)], [1, null], [1, 'sha256:x']]) }, typeOf(manifestType))],
    [2, () => doc({ schemaVersion: 2, mediaType: rng.pick(['application/vnd.foo+json', 'application/vnd.docker.distribution.manifest.v1+prettyjws', '', 7]),
      config, layers: layers() }, rng.pick([undefined, 'application/vnd.foo+json', manifestType]))],
    [1, () => doc({ schemaVersion: 2, mediaType: indexType, config, layers: layers() }, typeOf(indexType))],
    [1, () => doc({ schemaVersion: 2, mediaType: manifestType, config, layers: layers(), manifests: [descriptor(image)] }, manifestType)],
    // Over the 4 MiB a manifest may have.
    [0.3, () => doc({ schemaVersion: 2, mediaType: manifestType, config, layers: [], annotations: { pad: 'p'.repeat((4 << 20) + 10) } }, manifestType)],
  ]);
}
