// Which content the mesh brought goes when the disk is above its high watermark: a pure function of what is
// held, how recently it was used and how many other nodes hold it.
import { parseSize } from './size.js';

/** A disk watermark: bytes the store may hold, or a percentage of its filesystem that may be in use. */
export type Watermark = { bytes: number } | { percent: number };

export function parseWatermark(text: string, option: string): Watermark {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text);
  if (!m) {
    try {
      return { bytes: parseSize(text) };
    } catch {
      throw new Error(`${option} expects bytes (e.g. 50GiB) or a percentage of the store's filesystem (e.g. 80%), not "${text}"`);
    }
  }
  const percent = Number(m[1]);
  if (percent <= 0 || percent > 100) throw new Error(`${option} must be a percentage between 0 and 100, not "${text}"`);
  return { percent };
}

/** Checks that the marks measure the same thing and that low is below high. */
export function checkWatermarks(high: Watermark | undefined, low: Watermark | undefined): void {
  if (!high && !low) return;
  if (!high || !low) throw new Error('--disk-high and --disk-low go together');
  if ('percent' in high !== 'percent' in low) throw new Error('--disk-high and --disk-low must both be sizes or both be percentages');
  const value = (w: Watermark) => ('percent' in w ? w.percent : w.bytes);
  if (value(low) >= value(high)) throw new Error('--disk-low must be below --disk-high');
}

/** Something that may be evicted: an image the mesh brought, or a blob the mirror cached. */
export interface Candidate {
  /** Image name, or the digest of a cached blob. */
  key: string;
  /** Root digest of the image, or the blob's. */
  digest: string;
  kind: 'image' | 'cache';
  /** Milliseconds since the epoch. */
  lastUse: number;
  /** Other nodes that hold it. */
  copies: number;
  /** The blobs it references (its root included). */
  blobs: string[];
}

export interface PlanInput {
  candidates: Candidate[];
  /** Size of every blob held. */
  sizes: Map<string, number>;
  /** Blobs that stay whatever goes: those of images that are never evicted. */
  kept: Set<string>;
  /** Bytes to free. */
  excess: number;
  /** Candidates held by fewer other nodes go only when nothing else is left. */
  minCopies: number;
}

export interface Planned {
  candidate: Candidate;
  /** Bytes its removal frees: blobs no kept image and no candidate still staying references. */
  bytes: number;
  freedBlobs: string[];
  /** It goes though fewer than minCopies other nodes hold it. */
  lastCopies: boolean;
}

/**
 * Least recently used first among those at least `minCopies` other nodes hold, then least recently used
 * first among the rest, until `excess` bytes are freed or nothing is left. A blob is freed once every
 * candidate referencing it has gone and no kept image references it.
 */
export function planEviction({ candidates, sizes, kept, excess, minCopies }: PlanInput): { evict: Planned[]; freed: number } {
  // One whose every blob stays would go for nothing (say, with a filesystem filled by something else).
  const frees = candidates.filter((c) => c.blobs.some((d) => !kept.has(d) && sizes.has(d)));
  const users = new Map<string, number>();
  for (const c of frees) for (const d of new Set(c.blobs)) users.set(d, (users.get(d) ?? 0) + 1);
  const order = [...frees].sort((a, b) => Number(a.copies < minCopies) - Number(b.copies < minCopies) || a.lastUse - b.lastUse);
  const evict: Planned[] = [];
  let freed = 0;
  for (const candidate of order) {
    if (freed >= excess) break;
    const freedBlobs: string[] = [];
    for (const d of new Set(candidate.blobs)) {
      const left = users.get(d)! - 1;
      users.set(d, left);
      if (left === 0 && !kept.has(d) && sizes.has(d)) freedBlobs.push(d);
    }
    const bytes = freedBlobs.reduce((n, d) => n + sizes.get(d)!, 0);
    freed += bytes;
    evict.push({ candidate, bytes, freedBlobs, lastCopies: candidate.copies < minCopies });
  }
  return { evict, freed };
}
