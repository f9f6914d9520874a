// Frees what a deleted image alone referenced, for the stores that have no garbage collector of their
// own (containerd does it through its gc.ref labels). The blobs go a little after the delete, not at
// once: a push in flight may have found them present and be about to reference them, and clients
// such as the OCI conformance suite delete a manifest's blobs themselves right after the manifest.
// Nor while uploads are being written: a push that found a candidate present (HEAD, mount) may be sending its
// other layers, its manifest naming the candidate still to come; the sweep waits until uploads have been quiet
// for the delay, an hour past due at most (a store that never stops taking pushes must still free its space).
// The candidates are kept in a file, so that a restart meanwhile does not leave their blobs for ever.
import type { Logger } from 'pino';
import { readSaved, writeAtomically } from '../util/atomic-file.js';
import { isDigest } from '../oci/digest.js';
import { reachable } from '../oci/references.js';
import type { Store } from './store.js';
import type { Descriptor } from '../oci/digest.js';

const MAX_WAIT_FOR_QUIET_MS = 3_600_000;

interface When {
  due: number;
  latest: number;
}

const isWhen = (w: unknown): w is When =>
  typeof w === 'object' && w !== null && Number.isFinite((w as When).due) && Number.isFinite((w as When).latest);

export class OrphanSweeper {
  /** Digests that a deleted image referenced, with when they may go and when they go whatever uploads do. */
  readonly #candidates = new Map<string, When>();
  /** Candidates whose image's record is being removed now: not swept until it is gone. */
  readonly #pending = new Map<string, number>();
  #timer?: NodeJS.Timeout;
  #closed = false;
  /** Saves of the candidates, one after the other, each writing them as they are when it runs. */
  #saving = Promise.resolve();

  /** `lastWrite`: when an upload into the store last began, took bytes or ended. `file`: where the candidates are kept. */
  constructor(
    private readonly store: Store, private readonly delayMs: number, private readonly log: Logger,
    private readonly lastWrite: () => number, private readonly file: string,
  ) {}

  /** Takes up the candidates an earlier run left (it stopped before their sweep). */
  async restore(): Promise<void> {
    const what = 'the list of blobs of deleted images to free';
    const saved = await readSaved(this.file, this.log, what);
    if (saved === undefined) return;
    if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) return void this.log.warn({ file: this.file }, `${what}: not a list, starting afresh`);
    const entries = Object.entries(saved);
    const valid = entries.filter(([digest, when]) => isDigest(digest) && isWhen(when)) as [string, When][];
    if (valid.length < entries.length) this.log.warn({ file: this.file, skipped: entries.length - valid.length }, 'entries of the list of blobs to free that name none: skipped');
    // Not before a quiet delay: clients the restart cut off may be pushing again, their manifests to come.
    const after = Date.now() + this.delayMs;
    for (const [digest, when] of valid) this.#candidates.set(digest, { due: Math.max(when.due, after), latest: Math.max(when.latest, after) });
    this.#schedule();
  }

  /**
   * Lists the tree of `target` to free, and saves the list, before the image record naming it goes (a crash between
   * the two then frees them at the next start); call what it returns once the record is gone: a sweep finding it
   * still there would keep them.
   */
  async removing(target: Descriptor): Promise<() => void> {
    const due = Date.now() + this.delayMs;
    const tree = await reachable(this.store, [{ name: '', target, labels: {} }]);
    for (const digest of tree) {
      this.#candidates.set(digest, { due, latest: due + MAX_WAIT_FOR_QUIET_MS });
      this.#pending.set(digest, (this.#pending.get(digest) ?? 0) + 1);
    }
    await this.#save();
    // Until the record is gone, a sweep under way or due meanwhile leaves these be.
    return () => {
      for (const digest of tree) {
        const left = this.#pending.get(digest)! - 1;
        if (left === 0) this.#pending.delete(digest);
        else this.#pending.set(digest, left);
      }
      this.#schedule();
    };
  }


  /** Removes the candidates that are due and that no image record reaches any more. */
  async sweep(now = Date.now()): Promise<void> {
    const quiet = this.lastWrite() + this.delayMs;
    const due: [string, When][] = [];
    for (const [digest, when] of this.#candidates) {
      if (when.due > now || this.#pending.has(digest)) continue;
      if (quiet > now && when.latest > now) when.due = Math.min(quiet, when.latest);
      else due.push([digest, when]);
    }
    if (due.length === 0) return;
    const keep = await reachable(this.store, await this.store.images.list());
    let freed = 0;
    let bytes = 0;
    for (const [digest, when] of due) {
      if (this.#closed) break;
      // Named again by an image deleted meanwhile: it waits for that delete's delay.
      if (this.#candidates.get(digest) !== when) continue;
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

  /**
   * Never fails: the blobs are freed all the same unless meshd restarts first (a full disk is a likely cause). Also
   * after close: a delete that ends then is freed at the next start.
   */
  #save(): Promise<void> {
    this.#saving = this.#saving
      .then(() => writeAtomically(this.file, JSON.stringify(Object.fromEntries(this.#candidates))))
      .catch((err: unknown) => this.log.warn({ err, file: this.file }, 'cannot save the list of blobs to free: a restart before their sweep keeps them'));
    return this.#saving;
  }

  /** Stops sweeping, once the save under way is written. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#saving;
  }

  /** Sweeps when the next candidate is due. */
  #schedule(): void {
    if (this.#closed || this.#timer || this.#candidates.size === 0) return;
    const next = Math.min(...[...this.#candidates.values()].map((when) => when.due));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.sweep().then(() => this.#schedule(), (err) => this.log.warn({ err }, 'freeing the blobs of deleted images failed; tried again at the next delete'));
    }, Math.max(0, next - Date.now()));
    this.#timer.unref();
  }
}
