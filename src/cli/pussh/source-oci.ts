// An OCI image layout (`oci:DIR[:TAG]`): index.json names the images, blobs/<alg>/<hex> holds the bytes.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ImageRef } from './refs.js';
import { localName } from './refs.js';
import { PusshError } from './errors.js';
import { FileSource, selectFromIndex, type IndexEntry } from './source.js';

export interface LayoutFiles {
  /** The bytes of a file of the layout (`index.json`), undefined when absent. */
  read(path: string): Promise<Buffer | undefined>;
  /** Where a file of the layout is on disk (it may not exist). */
  path(path: string): string | undefined;
}

/** The layout file of a blob; undefined for anything that is not `alg:hex` (no path tricks). */
export function blobPath(digest: string): string | undefined {
  const m = /^([a-z0-9]+):([a-f0-9]{32,128})$/.exec(digest);
  return m ? `blobs/${m[1]}/${m[2]}` : undefined;
}

/** An image of a layout; `tag` picks it by name (`oci:DIR:TAG`), else the pushed image's name, else the only one. */
export async function layoutSource(files: LayoutFiles, description: string, want: { tag?: string; ref?: ImageRef }, cleanup?: () => Promise<void>): Promise<FileSource> {
  const raw = await files.read('index.json');
  if (!raw) throw new PusshError('image-not-found', `${description}: no index.json, so not an OCI image layout`);
  let entries: IndexEntry[];
  try {
    entries = (JSON.parse(raw.toString('utf8')) as { manifests?: IndexEntry[] }).manifests ?? [];
  } catch {
    throw new PusshError('failed', `${description}: index.json is not valid JSON`);
  }
  const root = selectFromIndex(entries, {
    tag: want.tag,
    fullName: want.ref && localName(want.ref),
    imageTag: want.ref?.tag,
    digest: want.ref?.digest,
  }, description);
  return new FileSource(description, root, (digest) => {
    const p = blobPath(digest);
    return p === undefined ? undefined : files.path(p);
  }, cleanup);
}

export function openOciDir(dir: string, want: { tag?: string; ref?: ImageRef }): Promise<FileSource> {
  const files: LayoutFiles = {
    read: (p) => readFile(join(dir, p)).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return undefined;
      throw err;
    }),
    path: (p) => join(dir, p),
  };
  return layoutSource(files, `oci:${dir}${want.tag ? `:${want.tag}` : ''}`, want);
}
