// What image records reference: the walk behind safe deletes and referrers.
import { NotFoundError, type ImageRecord, type RequestedIn, type Store } from '../store/store.js';
import { children, ManifestInvalidError, MANIFEST_MEDIA_TYPES, parseManifest, type ParsedManifest } from './manifest.js';
import { MAX_STORED_MANIFEST_BYTES } from './limits.js';


/**
 * The bytes of a small blob in the store; undefined if absent or larger than `limit`. The size is known
 * before anything is read, so asking for a large layer as a manifest costs no memory. With `requestedIn`,
 * a store that reaches beyond this host (the mirror) may bring what it lacks.
 */
export async function readSmallBlob(store: Store, digest: string, limit = MAX_STORED_MANIFEST_BYTES, requestedIn?: RequestedIn): Promise<Buffer | undefined> {
  const opened = await store.open(digest, undefined, requestedIn).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
  if (!opened) return undefined;
  const { size, stream } = opened;
  if (size > limit) {
    stream.destroy();
    return undefined;
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > size) throw new Error(`the store gave more than the ${size} bytes of ${digest}`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}

/** Reads and parses a manifest held by the store; undefined if absent. Throws ManifestInvalidError. */
export async function readManifest(store: Store, digest: string, mediaType?: string): Promise<{ body: Buffer; manifest: ParsedManifest } | undefined> {
  const body = await readSmallBlob(store, digest);
  return body && { body, manifest: parseManifest(body, mediaType) };
}

/**
 * Every digest reachable from the records (targets, configs, layers, index children). A child that is
 * absent (a platform not pulled) or does not parse as the manifest it claims to be is a leaf: whatever
 * is stored, the walk ends.
 */
export async function reachable(store: Store, records: ImageRecord[]): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = records.map((r) => r.target);
  while (queue.length > 0) {
    const d = queue.pop()!;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    if (!MANIFEST_MEDIA_TYPES.includes(d.mediaType)) continue;
    const found = await readManifest(store, d.digest, d.mediaType).catch((err) => {
      if (err instanceof ManifestInvalidError) return undefined;
      throw err;
    });
    if (found) queue.push(...children(found.manifest));
  }
  return seen;
}
