// Frees what a deleted image alone referenced, for the stores that have no garbage collector of their
// own (containerd does it through its gc.ref labels). The blobs go a little after the delete, not at
// once: a push in flight may have found them present and be about to reference them, and clients
// such as the OCI conformance suite delete a manifest's blobs themselves right after the manifest.
import type { Logger } from 'pino';
import { reachable } from '../oci/references.js';
import type { Store } from './store.js';
import type { Descriptor } from '../oci/digest.js';

export class OrphanSweeper {
  /** Digests that a deleted image referenced, with when they may go. */
  readonly #candidates = new Map<string, number>();
  #timer?: NodeJS.Timeout;

  constructor(private readonly store: Store, private readonly delayMs: number, private readonly log: Logger) {}

  /** Called once an image record naming `target` is gone; its tree is read now, while it is still there. */
  async removed(target: Descriptor): Promise<void> {
    const due = Date.now() + this.delayMs;
    for (const digest of await reachable(this.store, [{ name: '', target, labels: {} }])) this.#candidates.set(digest, due);
    this.#arm();
  }

  /** Removes the candidates that are due and that no image record reaches any more. */
  async sweep(now = Date.now()): Promise<void> {
    const due = [...this.#candidates].filter(([, at]) => at <= now).map(([digest]) => digest);
    if (due.length === 0) return;
    const keep = await reachable(this.store, await this.store.images.list());
    let freed = 0;
    let bytes = 0;
    for (const digest of due) {
      this.#candidates.delete(digest);
      if (keep.has(digest)) continue;
      const info = await this.store.stat(digest);
      if (info && (await this.store.delete(digest))) {
        freed++;
        bytes += info.size;
      }
    }
    if (freed > 0) this.log.info({ blobs: freed, bytes }, 'freed the blobs that only deleted images referenced');
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#timer || this.#candidates.size === 0) return;
    const next = Math.min(...this.#candidates.values());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sweep().then(() => this.#arm(), (err) => this.log.warn({ err }, 'freeing the blobs of deleted images failed; tried again at the next delete'));
    }, Math.max(0, next - Date.now()));
    this.#timer.unref();
  }
}
