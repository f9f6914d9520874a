// What image records reference: the walk behind safe deletes and referrers.
import { NotFoundError, type ImageRecord, type Store } from '../containerd/store.js';
import { children, MANIFEST_MEDIA_TYPES, parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { readAll } from './body.js';

/** Largest manifest read back from the store. */
const MAX_STORED_MANIFEST = 16 << 20;

/** The bytes of a small blob held by the store; undefined if absent. */
export async function readSmallBlob(store: Store, digest: string): Promise<Buffer | undefined> {
  const info = await store.stat(digest);
  if (!info) return undefined;
  // Deleted since stat (e.g. by a concurrent manifest delete in another repository): absent as well.
  const opened = await store.open(digest).catch((err: unknown) => {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  });
  return opened && readAll(opened.stream, Math.min(info.size, MAX_STORED_MANIFEST));
}

/** Reads and parses a manifest held by the store; undefined if absent. */
export async function readManifest(store: Store, digest: string, mediaType?: string): Promise<{ body: Buffer; manifest: ParsedManifest } | undefined> {
  const body = await readSmallBlob(store, digest);
  return body && { body, manifest: parseManifest(body, mediaType) };
}

/** Every digest reachable from the records (targets, configs, layers, index children) that the store holds. */
export async function reachable(store: Store, records: ImageRecord[]): Promise<Set<string>> {
  const seen = new Set<string>();
  const queue = records.map((r) => r.target);
  while (queue.length > 0) {
    const d = queue.pop()!;
    if (seen.has(d.digest)) continue;
    seen.add(d.digest);
    if (!MANIFEST_MEDIA_TYPES.includes(d.mediaType)) continue;
    // Absent children (platforms not pulled) are leaves; a stored manifest that does not parse fails the
    // walk, since guessing it references nothing could let a delete remove what it needs.
    const found = await readManifest(store, d.digest, d.mediaType);
    if (found) queue.push(...children(found.manifest));
  }
  return seen;
}
