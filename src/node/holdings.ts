// Keeps what the mesh believes this node holds true to the store: every blob digest and
// every tagged image name. Store events give quick updates; a periodic reconcile by listing
// catches what events miss (containerd 1.6 emits no event when content is committed).
import type { Logger } from 'pino';
import { type Store, type StoreEvent } from '../store/store.js';
import { isDigest } from '../oci/digest.js';
import type { Router } from '../dht/router.js';

/** Image records by digest (`repo@sha256:…`) keep untagged manifests alive; they are not announced as names. */
const isTagName = (name: string) => !name.includes('@');

export class Holdings {
  readonly #held = new Set<string>();
  /** Keys announced though not (yet) in the store: blobs arriving here, which this node already serves. */
  readonly #arriving = new Map<string, number>();
  readonly #abort = new AbortController();
  #timer?: NodeJS.Timeout;
  #pending?: NodeJS.Timeout;
  #running?: Promise<void>;
  #next?: Promise<void>;
  readonly #listeners: ((held: Set<string>) => void)[] = [];
  lastReconcile?: Date;

  constructor(
    private readonly store: Store,
    private readonly router: Router,
    private readonly log: Logger,
    private readonly intervalMs: number,
    private readonly arrivingDelayMs = 1000,
  ) {}

  /** Keys currently announced. */
  get size(): number {
    return this.#held.size;
  }

  async start(): Promise<void> {
    await this.reconcile();
    void this.#follow();
    this.#timer = setInterval(() => this.#schedule(0), this.intervalMs);
    this.#timer.unref();
  }

  /**
   * Lists the store and announces the difference. A call while a run lists may come too late for that
   * run (content committed after it listed): one more run follows, shared by every call made meanwhile.
   */
  reconcile(): Promise<void> {
    if (this.#running) {
      const again = () => {
        this.#next = undefined;
        return this.#abort.signal.aborted ? undefined : this.reconcile(); // stopped meanwhile: the store may be gone
      };
      return (this.#next ??= this.#running.then(again, again));
    }
    this.#running = this.#reconcile().finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** `listener` is given every blob digest and image name (untagged ones too) of each listing of the store. */
  onListed(listener: (held: Set<string>) => void): void {
    this.#listeners.push(listener);
  }

  async #reconcile(): Promise<void> {
    const now = new Set<string>();
    const names: string[] = [];
    for await (const blob of this.store.blobs()) now.add(blob.digest);
    for (const image of await this.store.images.list()) {
      names.push(image.name);
      if (isTagName(image.name)) now.add(image.name);
    }
    if (this.#listeners.length) {
      const held = new Set([...now, ...names]);
      for (const listener of this.#listeners) listener(held);
    }
    for (const key of this.#arriving.keys()) now.add(key);
    const add = [...now].filter((k) => !this.#held.has(k));
    const remove = [...this.#held].filter((k) => !now.has(k));
    this.#apply(add, remove);
    this.lastReconcile = new Date();
    if (add.length || remove.length) this.log.info({ added: add.length, removed: remove.length, held: this.#held.size }, 'announcements reconciled');
  }

  #apply(add: string[], remove: string[]): void {
    for (const k of add) this.#held.add(k);
    for (const k of remove) this.#held.delete(k);
    // An image name completes a push or a copy: a client on another host may pull it the next moment.
    if (add.length || remove.length) this.router.announce({ add, remove, urgent: add.some((k) => !isDigest(k)) });
  }

  /**
   * Announces a key the store does not hold yet (a blob arriving here), once it has been arriving for
   * `arrivingDelayMs`: small blobs are done before anyone could use the record, and a push would
   * otherwise have every node announce every blob in the same instant (replication does not need these
   * records: takers know their sources). The returned function ends that; the key stays announced only
   * if the store holds it by then.
   */
  announceArriving(key: string): () => void {
    this.#arriving.set(key, (this.#arriving.get(key) ?? 0) + 1);
    const timer = setTimeout(() => {
      if (this.#arriving.has(key) && !this.#held.has(key)) this.#apply([key], []);
    }, this.arrivingDelayMs);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      const left = (this.#arriving.get(key) ?? 1) - 1;
      if (left > 0) return void this.#arriving.set(key, left);
      this.#arriving.delete(key);
      this.#settle(key).catch((err: Error) => {
        this.log.warn({ key, err: err.message }, 'could not ask the store about a blob that stopped arriving; the next reconcile will');
      });
    };
  }

  /** A key no longer arriving stays announced only if the store holds it: one question, not a listing of the store. */
  async #settle(key: string): Promise<void> {
    const stored = (await this.store.stat(key)) !== undefined;
    if (this.#arriving.has(key)) return; // arriving again meanwhile
    if (stored && !this.#held.has(key)) this.#apply([key], []);
    if (!stored && this.#held.has(key)) this.#apply([], [key]);
  }

  /** Reconciles soon, once, however many events ask for it. */
  #schedule(delayMs: number): void {
    if (this.#pending) return;
    this.#pending = setTimeout(() => {
      this.#pending = undefined;
      this.reconcile().catch((err) => this.log.error({ err }, 'reconcile failed'));
    }, delayMs);
  }

  /** Follows store events for as long as the holdings runs, subscribing again when the store restarts. */
  async #follow(): Promise<void> {
    const signal = this.#abort.signal;
    for (let backoffMs = 500; !signal.aborted; backoffMs = Math.min(backoffMs * 2, 30_000)) {
      try {
        for await (const event of this.store.events(signal)) {
          this.#onEvent(event);
          backoffMs = 500;
        }
      } catch (err) {
        if (signal.aborted) return;
        this.log.warn({ err, retryInMs: backoffMs }, 'store events ended; subscribing again');
      }
      await new Promise((r) => setTimeout(r, backoffMs).unref());
      if (signal.aborted) return;
      // Whatever happened while unsubscribed is found by listing.
      this.#schedule(0);
    }
  }

  #onEvent(event: StoreEvent): void {
    switch (event.type) {
      case 'blob-added':
        if (!this.#held.has(event.digest)) this.#apply([event.digest], []);
        break;
      case 'blob-removed':
        if (this.#held.has(event.digest)) this.#apply([], [event.digest]);
        break;
      case 'image-added':
      case 'image-updated':
        // The image's content arrived before it, possibly without events of its own (containerd 1.6): the
        // name goes out with that content, never before it, or a client elsewhere that sees the name
        // may ask for a blob nobody announces yet.
        this.#schedule(0);
        break;
      case 'image-removed':
        if (this.#held.has(event.name)) this.#apply([], [event.name]);
        this.#schedule(500);
        break;
    }
  }

  stop(): void {
    this.#abort.abort();
    clearInterval(this.#timer);
    clearTimeout(this.#pending);
  }
}
