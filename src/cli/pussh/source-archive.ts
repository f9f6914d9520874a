// A `docker save` archive, from a file (`docker-archive:FILE[:REF]`) or from the Docker daemon's export
// API. Two layouts exist: the classic one (manifest.json, `<id>/layer.tar`, `<hex>.json`), and since
// Docker 25 an OCI image layout inside the tar. A tar has no index, so the archive is unpacked once into a
// temp dir (hashing every file on the way: classic layers are known by their path only).
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { extract as tarExtract } from 'tar-stream';
import { digestOf, type Descriptor } from '../../oci/digest.js';
import { MediaType } from '../../oci/manifest.js';
import { PusshError } from './errors.js';
import { localName, parseImageRef, type ImageRef } from './refs.js';
import { layoutSource } from './source-oci.js';
import { FileSource, type ImageSource } from './source.js';

export const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
export const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar';
export const DOCKER_LAYER_GZIP = 'application/vnd.docker.image.rootfs.diff.tar.gzip';

export interface ArchiveFile {
  /** Where the unpacked bytes are. */
  file: string;
  size: number;
  digest: string;
  gzip: boolean;
}

/** The archive path of an entry, or undefined for names that would leave the archive (`../x`, `/etc`). */
function cleanName(name: string): string | undefined {
  const n = posix.normalize(name.replace(/^(\.\/|\/)+/, ''));
  return n === '.' || n.startsWith('../') || n === '..' ? undefined : n.replace(/\/$/, '');
}

async function writeEntry(entry: AsyncIterable<Buffer>, file: string): Promise<ArchiveFile> {
  const hash = createHash('sha256');
  const out = createWriteStream(file);
  let size = 0;
  let head = Buffer.alloc(0);
  try {
    for await (const chunk of entry) {
      hash.update(chunk);
      if (head.length < 2) head = Buffer.concat([head, chunk.subarray(0, 2)]);
      size += chunk.length;
      if (!out.write(chunk)) await once(out, 'drain');
    }
    out.end();
    await finished(out);
  } catch (err) {
    out.destroy();
    throw err;
  }
  return { file, size, digest: `sha256:${hash.digest('hex')}`, gzip: head[0] === 0x1f && head[1] === 0x8b };
}

/** Unpacks every regular file into dir (named by a counter, never by the archive's names); links resolved. */
export async function unpackArchive(input: Readable, dir: string): Promise<Map<string, ArchiveFile>> {
  const files = new Map<string, ArchiveFile>();
  const links: [string, string][] = [];
  const extract = tarExtract();
  input.once('error', (err) => extract.destroy(err));
  input.pipe(extract);
  let n = 0;
  for await (const entry of extract) {
    const { name, type, linkname } = entry.header;
    const clean = cleanName(name);
    if (clean && (type === 'file' || type === 'contiguous-file')) {
      files.set(clean, await writeEntry(entry as AsyncIterable<Buffer>, join(dir, String(n++))));
      continue;
    }
    // docker save links a layer shared by two images instead of storing it twice.
    if (clean && linkname && (type === 'symlink' || type === 'link')) {
      const target = cleanName(type === 'symlink' ? posix.join(posix.dirname(clean), linkname) : linkname);
      if (target) links.push([clean, target]);
    }
    entry.resume();
    await once(entry, 'end');
  }
  for (let round = 0; round < 8 && links.length; round++) {
    for (let i = links.length - 1; i >= 0; i--) {
      const target = files.get(links[i][1]);
      if (target) {
        files.set(links[i][0], target);
        links.splice(i, 1);
      }
    }
  }
  return files;
}

interface ClassicEntry {
  Config?: string;
  RepoTags?: string[] | null;
  Layers?: string[];
}

function sameImage(a: string, b: ImageRef): boolean {
  try {
    return localName(parseImageRef(a)) === localName(b);
  } catch {
    return false;
  }
}

/** The classic layout: a Docker schema 2 manifest made from manifest.json, its layers the tars as they are. */
function classicSource(files: Map<string, ArchiveFile>, manifestJson: Buffer, description: string, want: ImageRef | undefined, cleanup: () => Promise<void>): ImageSource {
  let entries: ClassicEntry[];
  try {
    entries = JSON.parse(manifestJson.toString('utf8')) as ClassicEntry[];
    if (!Array.isArray(entries)) throw new Error('not a list');
  } catch {
    throw new PusshError('failed', `${description}: manifest.json is not a docker save manifest`);
  }
  const matching = want ? entries.filter((e) => e.RepoTags?.some((t) => sameImage(t, want))) : [];
  const chosen = matching.length === 1 ? matching[0] : entries.length === 1 ? entries[0] : undefined;
  if (!chosen) {
    const names = entries.flatMap((e) => e.RepoTags ?? []);
    throw new PusshError('image-not-found', `${description}: no single image named ${want?.given ?? '(none given)'}; it holds ${names.join(', ') || 'untagged images'}`);
  }
  const file = (path: string | undefined, what: string): ArchiveFile => {
    const f = path === undefined ? undefined : files.get(posix.normalize(path));
    if (!f) throw new PusshError('failed', `${description}: ${what} ${path ?? '(unnamed)'} is not in the archive`);
    return f;
  };
  const configFile = file(chosen.Config, 'config');
  const layerFiles = (chosen.Layers ?? []).map((l) => file(l, 'layer'));
  const byDigest = new Map<string, ArchiveFile>([configFile, ...layerFiles].map((f) => [f.digest, f]));
  const layers: Descriptor[] = layerFiles.map((f) => ({ mediaType: f.gzip ? DOCKER_LAYER_GZIP : DOCKER_LAYER, digest: f.digest, size: f.size }));
  const body = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.dockerManifest,
    config: { mediaType: DOCKER_CONFIG, digest: configFile.digest, size: configFile.size },
    layers,
  }, null, 2));
  const root = { mediaType: MediaType.dockerManifest, digest: digestOf(body), size: body.length };
  return new FileSource(description, root, (d) => byDigest.get(d)?.file, cleanup, new Map([[root.digest, body]]));
}

/**
 * A source reading a docker save archive. `ref` picks the image (`docker-archive:FILE:REF`), `image` is the
 * image being pushed (used when ref is absent). Unpacks into TMPDIR; the source's close() removes it.
 */
export async function archiveSource(input: Readable, description: string, want: { ref?: string; image?: ImageRef }): Promise<ImageSource> {
  const dir = await mkdtemp(join(tmpdir(), 'pussh-archive-'));
  // Ctrl-C ends pussh with process.exit, which runs no pending cleanup: the image's copy must not stay behind.
  const atExit = () => rmSync(dir, { recursive: true, force: true });
  process.once('exit', atExit);
  const cleanup = () => {
    process.off('exit', atExit);
    return rm(dir, { recursive: true, force: true });
  };
  try {
    const files = await unpackArchive(input, dir);
    const wanted = want.ref !== undefined ? parseImageRef(want.ref) : want.image;
    if (files.has('index.json') && files.has('oci-layout')) {
      return await layoutSource({
        read: async (p) => (files.has(p) ? readFile(files.get(p)!.file) : undefined),
        path: (p) => files.get(p)?.file,
      }, description, { ref: wanted }, cleanup);
    }
    const manifest = files.get('manifest.json');
    if (!manifest) throw new PusshError('failed', `${description}: neither manifest.json nor an OCI index.json: not a docker save archive`);
    return classicSource(files, await readFile(manifest.file), description, wanted, cleanup);
  } catch (err) {
    await cleanup();
    if (err instanceof PusshError) throw err;
    throw new PusshError('failed', `${description}: cannot read the archive: ${(err as Error).message}`, { cause: err });
  }
}

export function openDockerArchive(file: string, want: { ref?: string; image?: ImageRef }): Promise<ImageSource> {
  const stream = createReadStream(file, { highWaterMark: 1 << 20 });
  return archiveSource(stream, `docker-archive:${file}`, want).catch((err: PusshError) => {
    if ((err.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') throw new PusshError('image-not-found', `docker-archive:${file}: no such file`);
    throw err;
  });
}
