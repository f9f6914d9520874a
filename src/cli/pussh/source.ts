// Where the image comes from. Every source gives the same three things: the root descriptor (a manifest
// or an index), whether it holds a blob, and the blob's bytes.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Descriptor } from '../../oci/digest.js';
import { MAX_MANIFEST_BYTES, readBounded } from '../../oci/limits.js';
import { PusshError } from './errors.js';

export interface ImageSource {
  /** For messages and the summary: `containerd (namespace default)`, `oci:/srv/layout`. */
  readonly description: string;
  readonly root: Descriptor;
  has(digest: string): Promise<boolean>;
  /** The whole blob; throws when the source does not hold it. */
  open(digest: string): Promise<Readable>;
  close(): Promise<void>;
}

export async function readBlob(source: ImageSource, digest: string): Promise<Buffer> {
  return readBounded(await source.open(digest), MAX_MANIFEST_BYTES);
}

export function missingBlob(source: { description: string }, digest: string): PusshError {
  return new PusshError('image-not-found', `${source.description} does not hold blob ${digest}`);
}

/** A source whose blobs are files: an OCI layout directory, or an archive unpacked to a temp dir. */
export class FileSource implements ImageSource {
  constructor(
    readonly description: string,
    readonly root: Descriptor,
    /** The file holding a blob, or undefined. */
    private readonly fileOf: (digest: string) => string | undefined,
    private readonly cleanup: () => Promise<void> = async () => {},
    /** Blobs that exist only in memory (a manifest made for a classic docker-archive). */
    private readonly made = new Map<string, Buffer>(),
  ) {}

  async has(digest: string): Promise<boolean> {
    if (this.made.has(digest)) return true;
    const file = this.fileOf(digest);
    return file !== undefined && (await stat(file).then((s) => s.isFile(), () => false));
  }

  async open(digest: string): Promise<Readable> {
    const made = this.made.get(digest);
    if (made) return Readable.from([made]);
    const file = this.fileOf(digest);
    if (!file || !(await this.has(digest))) throw missingBlob(this, digest);
    return createReadStream(file, { highWaterMark: 1 << 20 });
  }

  close(): Promise<void> {
    return this.cleanup();
  }
}

export interface IndexEntry extends Descriptor {
  annotations?: Record<string, string>;
  platform?: { os?: string; architecture?: string; variant?: string };
}

const REF_NAME = 'org.opencontainers.image.ref.name';
const IMAGE_NAME = 'io.containerd.image.name';

/**
 * Picks the image an OCI layout's index.json means: the one with the digest pushed (`app@sha256:…`), else the one
 * named `tag` (`oci:DIR:TAG`), else the one named like the image being pushed, else the only one.
 */
export function selectFromIndex(entries: IndexEntry[], want: { tag?: string; fullName?: string; imageTag?: string; digest?: string }, where: string): Descriptor {
  const named = (e: IndexEntry, n: string) => e.annotations?.[REF_NAME] === n || e.annotations?.[IMAGE_NAME] === n;
  const pick = (found: IndexEntry[]) => found.length === 1 ? found[0] : undefined;
  let chosen: IndexEntry | undefined;
  if (want.digest !== undefined) {
    chosen = entries.find((e) => e.digest === want.digest && (want.tag === undefined || named(e, want.tag)));
  } else if (want.tag !== undefined) {
    chosen = pick(entries.filter((e) => named(e, want.tag!)));
  } else {
    chosen = (want.fullName ? pick(entries.filter((e) => named(e, want.fullName!))) : undefined)
      ?? (want.imageTag ? pick(entries.filter((e) => e.annotations?.[REF_NAME] === want.imageTag)) : undefined)
      ?? pick(entries);
  }
  if (!chosen) {
    const names = entries.map((e) => e.annotations?.[IMAGE_NAME] ?? e.annotations?.[REF_NAME] ?? e.digest);
    const asked = [want.tag ?? want.fullName, want.digest && `with digest ${want.digest}`].filter(Boolean).join(' ') || 'an image';
    throw new PusshError('image-not-found', `${where}: no single image named ${asked}; it holds ${names.length ? names.join(', ') : 'no image'}`);
  }
  return { mediaType: chosen.mediaType, digest: chosen.digest, size: chosen.size };
}
