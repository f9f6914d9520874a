// Builds real OCI images offline: an OCI layout directory with gzipped tar layers
// of random files, optionally a two-platform index.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Blob {
  mediaType: string;
  digest: string;
  size: number;
}

export interface BuiltImage {
  /** The OCI layout directory; `oci:<dir>:<tag>` for skopeo. */
  dir: string;
  tag: string;
  /** Root manifest (or index) digest. */
  digest: string;
  /** Every blob in the layout, manifests included. */
  blobs: Blob[];
  layers: Blob[];
}

function writeBlob(dir: string, data: Buffer, mediaType: string): Blob {
  const hex = createHash('sha256').update(data).digest('hex');
  writeFileSync(join(dir, 'blobs', 'sha256', hex), data);
  return { mediaType, digest: `sha256:${hex}`, size: data.length };
}

/** A gzipped tar holding one file of `size` random bytes. */
function layer(dir: string, size: number, name: string): { blob: Blob; diffId: string } {
  const work = mkdtempSync(join(tmpdir(), 'layer-'));
  try {
    mkdirSync(join(work, 'root', 'data'), { recursive: true });
    writeFileSync(join(work, 'root', 'data', name), randomBytes(size));
    execFileSync('tar', ['-C', join(work, 'root'), '--numeric-owner', '--owner=0', '--group=0', '-cf', join(work, 'l.tar'), 'data']);
    const tar = readFileSync(join(work, 'l.tar'));
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    execFileSync('gzip', ['-1', '-n', join(work, 'l.tar')]);
    return { blob: writeBlob(dir, readFileSync(join(work, 'l.tar.gz')), 'application/vnd.oci.image.layer.v1.tar+gzip'), diffId };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function imageManifest(dir: string, layerSizes: number[], arch: string, tag: string): { manifest: Blob; blobs: Blob[]; layers: Blob[] } {
  const built = layerSizes.map((size, i) => layer(dir, size, `${tag}-${arch}-${i}.bin`));
  const config = writeBlob(dir, Buffer.from(JSON.stringify({
    architecture: arch,
    os: 'linux',
    config: { Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: built.map((l) => l.diffId) },
  })), 'application/vnd.oci.image.config.v1+json');
  const layers = built.map((l) => l.blob);
  const manifest = writeBlob(dir, Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config,
    layers,
  })), 'application/vnd.oci.image.manifest.v1+json');
  return { manifest, blobs: [config, ...layers, manifest], layers };
}

/**
 * Builds an image whose layers hold `layerSizes` random bytes each. With
 * `platforms`, the root is an index with one manifest per architecture.
 */
export function buildImage(opts: { layerSizes: number[]; tag?: string; platforms?: string[]; dir?: string }): BuiltImage {
  const tag = opts.tag ?? 'latest';
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'oci-image-'));
  mkdirSync(join(dir, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  let root: Blob;
  const blobs: Blob[] = [];
  const layers: Blob[] = [];
  if (opts.platforms) {
    const entries = opts.platforms.map((arch) => {
      const m = imageManifest(dir, opts.layerSizes, arch, tag);
      blobs.push(...m.blobs);
      layers.push(...m.layers);
      return { ...m.manifest, platform: { architecture: arch, os: 'linux' } };
    });
    root = writeBlob(dir, Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries,
    })), 'application/vnd.oci.image.index.v1+json');
    blobs.push(root);
  } else {
    const m = imageManifest(dir, opts.layerSizes, 'amd64', tag);
    blobs.push(...m.blobs);
    layers.push(...m.layers);
    root = m.manifest;
  }
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': tag } }],
  }));
  return { dir, tag, digest: root.digest, blobs, layers };
}

/**
 * A new layout (in `dir`, default a fresh temp dir) holding `image` with layer `index` replaced by a layer of
 * `size` fresh random bytes, tagged `tag`: the other layers keep their digests, config and manifest change.
 * Single-platform images only.
 */
export function withChangedLayer(image: BuiltImage, opts: { index: number; size: number; tag: string; dir?: string }): BuiltImage {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'oci-image-'));
  cpSync(image.dir, dir, { recursive: true });
  const read = (digest: string) => JSON.parse(readFileSync(join(dir, 'blobs', 'sha256', digest.slice('sha256:'.length)), 'utf8'));
  const manifest = read(image.digest);
  if (!Array.isArray(manifest.layers)) throw new Error('withChangedLayer takes a single-platform image');
  const config = read(manifest.config.digest);
  const fresh = layer(dir, opts.size, `${opts.tag}-changed-${opts.index}.bin`);
  config.rootfs.diff_ids[opts.index] = fresh.diffId;
  const layers: Blob[] = manifest.layers.map((l: Blob, i: number) => (i === opts.index ? fresh.blob : l));
  const newConfig = writeBlob(dir, Buffer.from(JSON.stringify(config)), manifest.config.mediaType);
  const root = writeBlob(dir, Buffer.from(JSON.stringify({ ...manifest, config: newConfig, layers })), image.blobs.find((b) => b.digest === image.digest)!.mediaType);
  writeFileSync(join(dir, 'index.json'), JSON.stringify({
    schemaVersion: 2,
    manifests: [{ ...root, annotations: { 'org.opencontainers.image.ref.name': opts.tag } }],
  }));
  return { dir, tag: opts.tag, digest: root.digest, blobs: [newConfig, ...layers, root], layers };
}
