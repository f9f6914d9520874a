// What the store holds and why: every image with its origin and the blobs it references, every blob's size,
// and the bytes of each category `meshctl df` shows.
import { statfs } from 'node:fs/promises';
import { reachable } from '../oci/references.js';
import { originOf, type ImageRecord, type Origin, type Store } from '../store/store.js';
import type { DiskUsage } from '../api/admin-types.js';

export interface HeldImage {
  record: ImageRecord;
  origin: Origin;
  /** A container was created from it. */
  pinned: boolean;
  /** The digests it references that the store holds, its root included. */
  blobs: string[];
}

export interface Survey {
  images: HeldImage[];
  /** Every blob held, by digest. */
  sizes: Map<string, number>;
}

export async function survey(store: Store): Promise<Survey> {
  const sizes = new Map<string, number>();
  for await (const blob of store.blobs()) sizes.set(blob.digest, blob.size);
  const [records, used] = await Promise.all([store.images.list(), store.containerImages?.() ?? new Set<string>()]);
  const images: HeldImage[] = [];
  for (const record of records) {
    const blobs = [...(await reachable(store, [record]))].filter((d) => sizes.has(d));
    images.push({ record, origin: originOf(record), pinned: used.has(record.name), blobs });
  }
  return { images, sizes };
}

/** Ranks of the categories: a blob several images share counts in the first. */
const CATEGORIES = ['pinned', 'pushed', 'pulled', 'replicated'] as const;
type Category = (typeof CATEGORIES)[number] | 'cache';

export const categoryOf = (image: HeldImage): Category => (image.pinned ? 'pinned' : image.origin);

/** The bytes of each category; they add up to the total. */
export function categorize({ images, sizes }: Survey): Pick<DiskUsage, 'total' | 'pinned' | 'pushed' | 'pulled' | 'replicated' | 'cache'> {
  const rank = new Map<string, number>();
  for (const image of images) {
    const r = CATEGORIES.indexOf(categoryOf(image) as (typeof CATEGORIES)[number]);
    for (const d of image.blobs) rank.set(d, Math.min(rank.get(d) ?? r, r));
  }
  const usage = { total: 0, pinned: 0, pushed: 0, pulled: 0, replicated: 0, cache: 0 };
  for (const [digest, size] of sizes) {
    const r = rank.get(digest);
    usage[r === undefined ? 'cache' : CATEGORIES[r]] += size;
    usage.total += size;
  }
  return usage;
}

/** Size and free bytes of the filesystem holding `dir`, or undefined when the store has no directory. */
export async function filesystemOf(dir: string | undefined): Promise<{ size: number; free: number } | undefined> {
  if (!dir) return undefined;
  const fs = await statfs(dir);
  return { size: fs.blocks * fs.bsize, free: fs.bavail * fs.bsize };
}
