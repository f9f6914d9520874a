// The blobs this node is receiving from the mesh right now, by digest: the mirror creates them, the
// local registry and the peer data plane read them while they grow.
import { mkdir, rm } from 'node:fs/promises';
import { Spool } from './spool.js';

export class Spools {
  readonly #active = new Map<string, Spool>();

  private constructor(private readonly dir: string) {}

  /** Spool files left by a process that died are useless: they are removed. */
  static async open(dir: string): Promise<Spools> {
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true });
    return new Spools(dir);
  }

  get(digest: string): Spool | undefined {
    return this.#active.get(digest);
  }

  async create(digest: string): Promise<Spool> {
    if (this.#active.has(digest)) throw new Error(`a transfer of ${digest} is already under way`);
    const spool = await Spool.create(this.dir, digest);
    this.#active.set(digest, spool);
    return spool;
  }

  async remove(spool: Spool): Promise<void> {
    if (this.#active.get(spool.digest) === spool) this.#active.delete(spool.digest);
    await spool.dispose();
  }

  /** Transfers under way, for status and listings. */
  list(): Spool[] {
    return [...this.#active.values()];
  }
}
