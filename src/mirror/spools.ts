// The blobs this node is receiving from the mesh right now, by digest: the mirror creates them, the
// local registry and the peer data plane read them while they grow.
import { mkdir, rm, statfs } from 'node:fs/promises';
import { Spool } from './spool.js';

export class Spools {
  readonly #active = new Map<string, Spool>();
  /** Wake-ups of those waiting for a digest's spool to state its size (see sized()). */
  readonly #waiting = new Map<string, Set<() => void>>();

  private constructor(private readonly dir: string, private readonly maxBlobBytes: number) {}

  /** Spool files left by a process that died are useless: they are removed. `maxBlobBytes`: the largest blob taken. */
  static async open(dir: string, maxBlobBytes = Infinity): Promise<Spools> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return new Spools(dir, maxBlobBytes);
  }

  get(digest: string): Spool | undefined {
    return this.#active.get(digest);
  }

  async create(digest: string): Promise<Spool> {
    if (this.#active.has(digest)) throw new Error(`a transfer of ${digest} is already under way`);
    const spool = await Spool.create(this.dir, digest, this.maxBlobBytes);
    this.#active.set(digest, spool);
    const waiting = this.#waiting.get(digest);
    if (waiting) void spool.sized().then((size) => size !== undefined && waiting.forEach((wake) => wake()));
    return spool;
  }

  /**
   * Resolves once a spool of `digest` states its size (it can be read from then on), or after `ms`:
   * a peer waiting for this node's copy to begin gets its first bytes without a polling delay.
   */
  async sized(digest: string, ms: number): Promise<void> {
    let wake!: () => void;
    const woken = new Promise<void>((resolve) => (wake = resolve));
    const timer = setTimeout(wake, ms);
    const waiting = this.#waiting.get(digest) ?? new Set();
    this.#waiting.set(digest, waiting.add(wake));
    // A spool that ends without a size wakes nobody: the caller would only find it again.
    void this.#active.get(digest)?.sized().then((size) => size !== undefined && wake());
    await woken;
    clearTimeout(timer);
    waiting.delete(wake);
    if (waiting.size === 0) this.#waiting.delete(digest);
  }

  async remove(spool: Spool): Promise<void> {
    if (this.#active.get(spool.digest) === spool) this.#active.delete(spool.digest);
    await spool.dispose();
  }

  /**
   * Whether the rest of `size` bytes of `spool` fits in what its filesystem has free, less what the other transfers
   * under way still have to write: one that does not would fill the disk (containerd's too, when it shares it).
   */
  async fits(spool: Spool, size: number): Promise<boolean> {
    const fs = await statfs(this.dir);
    const coming = this.list().filter((s) => s !== spool).reduce((n, s) => n + Math.max(0, (s.size ?? 0) - s.received), 0);
    return size - spool.received <= fs.bavail * fs.bsize - coming;
  }

  /** Transfers under way, for status and listings. */
  list(): Spool[] {
    return [...this.#active.values()];
  }
}
