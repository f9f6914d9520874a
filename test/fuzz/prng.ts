// Seeded randomness: mulberry32. The fuzzer draws one stream per case, so that any case replays alone; the replication
// simulation one per run.

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The seed of case `index` of a stream (`registry`, `peer`) in the run seeded `seed` (FNV-1a). */
export function caseSeed(seed: number, stream: string, index: number): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (const c of `${stream}:${index}`) h = Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0;
  return h;
}

export class Rng {
  readonly #next: () => number;

  constructor(seed: number) {
    this.#next = mulberry32(seed);
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.#next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.#next() < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.#next() * items.length)];
  }

  /** Picks a value by weight, then calls it when it is a function. */
  weighted<T>(items: readonly (readonly [number, T | (() => T)])[]): T {
    const total = items.reduce((s, [w]) => s + w, 0);
    let r = this.#next() * total;
    for (const [w, v] of items) {
      r -= w;
      if (r < 0) return typeof v === 'function' ? (v as () => T)() : v;
    }
    const last = items[items.length - 1][1];
    return typeof last === 'function' ? (last as () => T)() : last;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n + 4);
    for (let i = 0; i < n; i += 4) out.writeUInt32LE(Math.floor(this.#next() * 4294967296), i);
    return out.subarray(0, n);
  }

  hex(n: number): string {
    return this.bytes(Math.ceil(n / 2)).toString('hex').slice(0, n);
  }

  string(n: number, alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789'): string {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.#next() * alphabet.length)];
    return s;
  }
}
