// Frees what a deleted image alone referenced, for the stores that have no garbage collector of their
// own (containerd does it through its gc.ref labels). The blobs go a little after the delete, not at
// once: a push in flight may have found them present and be about to reference them, and clients
// such as the OCI conformance suite delete a manifest's blobs themselves right after the manifest.
// Nor while uploads are being written: a push that found a candidate present (HEAD, mount) may be sending its
// other layers, its manifest naming the candidate still to come; the sweep waits until uploads have been quiet
// for the delay, an hour past due at most (a store that never stops taking pushes must still free its space).
// The candidates are kept in a file, so that a restart meanwhile does not leave their blobs for ever.
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { writeAtomically } from '../util/atomic-file.js';
import { reachable } from '../oci/references.js';
import type { Store } from './store.js';
import type { Descriptor } from '../oci/digest.js';

const MAX_WAIT_FOR_QUIET_MS = 3_600_000;

export class OrphanSweeper {
  /** Digests that a deleted image referenced, with when they may go and when they go whatever uploads do. */
  readonly #candidates = new Map<string, { due: number; latest: number }>();
  #timer?: NodeJS.Timeout;
  /** Saves of the candidates, one after the other, each writing them as they are when it runs. */
  #saving = Promise.resolve();

  /** `lastWrite`: when an upload into the store last began, took bytes or ended. `file`: where the candidates are kept. */
  constructor(
    private readonly store: Store, private readonly delayMs: number, private readonly log: Logger,
    private readonly lastWrite: () => number, private readonly file: string,
  ) {}

  /** Takes up the candidates an earlier run left (it stopped before their sweep). */
  async restore(): Promise<void> {
    let saved: Record<string, { due: number; latest: number }>;
    try {
      saved = JSON.parse(await readFile(this.file, 'utf8')) as typeof saved;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      this.log.warn({ err, file: this.file }, 'the blobs of images deleted before this start cannot be freed: their list is unreadable');
      return;
    }
    for (const [digest, when] of Object.entries(saved)) this.#candidates.set(digest, when);
    this.#arm();
  }

  /** Called once an image record naming `target` is gone; its tree is read now, while it is still there. */
  async removed(target: Descriptor): Promise<void> {
    const due = Date.now() + this.delayMs;
    for (const digest of await reachable(this.store, [{ name: '', target, labels: {} }])) {
      this.#candidates.set(digest, { due, latest: due + MAX_WAIT_FOR_QUIET_MS });
    }
    await this.#save();
    this.#arm();
  }

  /** Removes the candidates that are due and that no image record reaches any more. */
  async sweep(now = Date.now()): Promise<void> {
    const quiet = this.lastWrite() + this.delayMs;
    const due: string[] = [];
    for (const [digest, when] of this.#candidates) {
      if (when.due > now) continue;
      if (quiet > now && when.latest > now) when.due = Math.min(quiet, when.latest);
      else due.push(digest);
    }
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
    await this.#save();
    if (freed > 0) this.log.info({ blobs: freed, bytes }, 'freed the blobs that only deleted images referenced');
  }

  /** Never fails: the blobs are freed all the same unless meshd restarts first (a full disk is a likely cause). */
  #save(): Promise<void> {
    this.#saving = this.#saving
      .then(() => writeAtomically(this.file, JSON.stringify(Object.fromEntries(this.#candidates))))
      .catch((err: unknown) => this.log.warn({ err, file: this.file }, 'cannot save the list of blobs to free: a restart before their sweep keeps them'));
    return this.#saving;
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #arm(): void {
    if (this.#timer || this.#candidates.size === 0) return;
    const next = Math.min(...[...this.#candidates.values()].map((when) => when.due));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sweep().then(() => this.#arm(), (err) => this.log.warn({ err }, 'freeing the blobs of deleted images failed; tried again at the next delete'));
    }, Math.max(0, next - Date.now()));
    this.#timer.unref();
  }
}
