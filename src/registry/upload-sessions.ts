// Upload sessions of the push API: one store Upload each, owned by one repository and one client
// address, capped per client and in total, expired when abandoned so that their space is released.
import type { Logger } from 'pino';
import { DigestMismatchError, SizeMismatchError, StoreFullError, StoreUnavailableError, UploadClosedError, type BlobInfo, type Store, type Upload } from '../store/store.js';
import { asRegistryError, digestInvalid, RegistryError, uploadUnknown } from './errors.js';
import { uploadsEnded, uploadsInProgress } from './metrics.js';

export interface UploadLimits {
  /** Largest blob accepted, in bytes. */
  maxBlobBytes: number;
  /** An upload untouched for this long is aborted. */
  idleTimeoutMs: number;
  /** Sessions open at once, in all and per client address: past them a client gets 429. */
  maxSessions: number;
  maxSessionsPerClient: number;
  /** At a cap, the session quiet longest gives its place once quiet this long (default RECLAIM_AFTER_MS). */
  reclaimAfterMs?: number;
}

/**
 * Clients do not cancel what they abandon (a push interrupted, a CI job cancelled) and all of a host's come from
 * 127.0.0.1: a session this quiet is more likely abandoned than a client's hundredth at once, and gives its place.
 */
const RECLAIM_AFTER_MS = 60_000;

/** Seconds a client over a session cap is told to wait. */
const RETRY_AFTER_S = 10;

interface Session {
  repo: string;
  client: string;
  upload: Upload;
  lastActive: number;
  /** A request writes to it, or commits it: another waits its turn (416). */
  busy: boolean;
  committing?: boolean;
}

export const tooLarge = (limit: number) =>
  new RegistryError(413, 'SIZE_INVALID', `blob exceeds the upload limit of ${limit} bytes`, { limit });

/** A chunk that does not fit the upload (416), with Range: where the upload stands, for the client to go on from. */
export const chunkRefused = (message: string, offset: number) =>
  new RegistryError(416, 'BLOB_UPLOAD_INVALID', message, undefined, { range: rangeHeader(offset) });

const tooManySessions = (message: string) =>
  new RegistryError(429, 'TOOMANYREQUESTS', message, undefined, { 'retry-after': String(RETRY_AFTER_S) });

export class UploadSessions {
  readonly #sessions = new Map<string, Session>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(private readonly store: Store, readonly limits: UploadLimits, private readonly log: Logger) {
    this.#sweeper = setInterval(() => void this.sweep(), Math.max(1000, Math.min(60_000, limits.idleTimeoutMs / 4)));
    this.#sweeper.unref();
  }

  get size(): number {
    return this.#sessions.size;
  }

  /** Opens a session for `client` (its address), or 429 when a cap is reached and no quiet session gives its place. */
  async start(repo: string, client: string): Promise<{ id: string; upload: Upload }> {
    const { maxSessions, maxSessionsPerClient } = this.limits;
    if (this.#sessions.size >= maxSessions && !this.#reclaim([...this.#sessions])) {
      this.log.warn({ client, sessions: this.#sessions.size }, 'upload refused: the registry holds its maximum of upload sessions');
      throw tooManySessions(`the registry holds its maximum of ${maxSessions} upload sessions; finish or cancel some`);
    }
    const own = [...this.#sessions].filter(([, s]) => s.client === client);
    if (own.length >= maxSessionsPerClient && !this.#reclaim(own)) {
      throw tooManySessions(`this client holds its maximum of ${maxSessionsPerClient} upload sessions; finish or cancel some`);
    }
    const upload = await this.store.beginUpload().catch((err) => { throw asRegistryError(err) ?? err; });
    this.#sessions.set(upload.id, { repo, client, upload, lastActive: Date.now(), busy: false });
    uploadsInProgress.inc();
    this.log.debug({ upload: upload.id, repo, client }, 'upload started');
    return { id: upload.id, upload };
  }

  /** The session, or BLOB_UPLOAD_UNKNOWN when it does not exist for this repository. */
  #session(repo: string, id: string): Session {
    const session = this.#sessions.get(id);
    if (!session || session.repo !== repo) throw uploadUnknown(id);
    return session;
  }

  /** The session's upload, or BLOB_UPLOAD_UNKNOWN when it does not exist for this repository. */
  get(repo: string, id: string): Upload {
    const session = this.#session(repo, id);
    session.lastActive = Date.now();
    return session.upload;
  }

  /** The session for a request that writes to it: BLOB_UPLOAD_UNKNOWN when it is not there, 416 while another request has it. */
  #claim(repo: string, id: string): Session {
    const session = this.#session(repo, id);
    if (session.busy) throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', 'another request is writing to this upload');
    return session;
  }

  /** Appends a request body at `expectedOffset` (when the client said one). */
  async append(repo: string, id: string, body: AsyncIterable<Uint8Array>, expectedOffset?: number): Promise<number> {
    const session = this.#claim(repo, id);
    if (expectedOffset !== undefined && expectedOffset !== session.upload.offset) {
      throw chunkRefused(`chunk starts at ${expectedOffset}, upload is at ${session.upload.offset}`, session.upload.offset);
    }
    session.busy = true;
    try {
      const offset = await session.upload.append(this.#limited(session.upload, body));
      if (!this.#sessions.has(id)) throw uploadUnknown(id); // cancelled while this request wrote
      return offset;
    } catch (err) {
      // Cancelled or expired while this request wrote to it.
      if (err instanceof UploadClosedError) throw uploadUnknown(id);
      // A full disk or an oversized blob ends the session at once, releasing its space.
      if (err instanceof StoreFullError) {
        await this.discard(id);
        this.log.warn({ upload: id, repo, bytes: session.upload.offset }, 'upload failed: the disk is full');
        throw asRegistryError(err)!;
      }
      if (err instanceof RegistryError && err.code === 'SIZE_INVALID') await this.discard(id);
      throw err;
    } finally {
      session.busy = false;
      session.lastActive = Date.now();
    }
  }

  /**
   * Verifies and publishes the blob; the session ends either way, but for a store that did not answer when
   * `retryable` (the client's request sent no bytes with it, so its retry is the same): the client is told to try
   * again (503), and its retry finds the session.
   */
  async finish(repo: string, id: string, digest: string, labels: Record<string, string>, retryable = false): Promise<BlobInfo> {
    const session = this.#claim(repo, id);
    const { upload } = session;
    session.busy = session.committing = true;
    try {
      const info = await upload.commit({ digest }, labels);
      if (this.#remove(id)) uploadsEnded.inc({ outcome: 'committed' });
      this.log.debug({ upload: id, repo, digest, bytes: upload.offset }, 'upload committed');
      return info;
    } catch (err) {
      if (retryable && err instanceof StoreUnavailableError && this.#sessions.has(id)) {
        session.busy = session.committing = false;
        session.lastActive = Date.now();
        throw err;
      }
      if (this.#remove(id)) uploadsEnded.inc({ outcome: 'rejected' });
      await upload.abort();
      if (err instanceof DigestMismatchError) throw digestInvalid('provided digest did not match uploaded content', { expected: err.expected, actual: err.actual });
      if (err instanceof SizeMismatchError) throw new RegistryError(400, 'SIZE_INVALID', err.message);
      throw err;
    }
  }

  async cancel(repo: string, id: string): Promise<void> {
    const session = this.#session(repo, id);
    // Too late: aborted under its commit, the blob might be published all the same.
    if (session.committing) throw new RegistryError(416, 'BLOB_UPLOAD_INVALID', 'the upload is being committed');
    await this.discard(id, 'cancelled');
  }

  /**
   * Ends the quietest of `among` that took bytes and has been quiet for reclaimAfterMs (one that took none may be
   * a client's next layer, opened ahead and waiting its turn); whether it did. Its place is free before this returns.
   */
  #reclaim(among: [string, Session][]): boolean {
    const idle = among.filter(([, s]) => !s.busy && s.upload.offset > 0).sort(([, a], [, b]) => a.lastActive - b.lastActive)[0];
    if (!idle || Date.now() - idle[1].lastActive < (this.limits.reclaimAfterMs ?? RECLAIM_AFTER_MS)) return false;
    const [id, session] = idle;
    this.log.info({ upload: id, repo: session.repo, client: session.client, bytes: session.upload.offset }, 'quiet upload ended to make room for a new one');
    void this.discard(id, 'expired');
    return true;
  }

  /** Ends a session if it still exists. */
  async discard(id: string, outcome: 'cancelled' | 'rejected' | 'expired' = 'rejected'): Promise<void> {
    const session = this.#remove(id);
    if (session) uploadsEnded.inc({ outcome });
    await session?.upload.abort();
  }

  /** Takes a session out of the open ones. */
  #remove(id: string): Session | undefined {
    const session = this.#sessions.get(id);
    if (session && this.#sessions.delete(id)) uploadsInProgress.dec();
    return session;
  }

  async *#limited(upload: Upload, body: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array> {
    let total = upload.offset;
    for await (const chunk of body) {
      total += chunk.length;
      if (total > this.limits.maxBlobBytes) throw tooLarge(this.limits.maxBlobBytes);
      yield chunk;
    }
  }

  async sweep(now = Date.now()): Promise<void> {
    for (const [id, session] of this.#sessions) {
      if (session.busy || now - session.lastActive < this.limits.idleTimeoutMs) continue;
      this.log.info({ upload: id, repo: session.repo, bytes: session.upload.offset }, 'abandoned upload expired');
      await this.discard(id, 'expired');
    }
  }

  /** Aborts every session: used at shutdown so that nothing partial survives. */
  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    const sessions = [...this.#sessions.entries()];
    for (const [id] of sessions) this.#remove(id);
    uploadsEnded.inc({ outcome: 'aborted' }, sessions.length);
    await Promise.all(sessions.map(([, s]) => s.upload.abort()));
  }
}

/** The `Range` header of an upload holding `offset` bytes (`0-0` when empty, as registries answer). */
export function rangeHeader(offset: number): string {
  return `0-${Math.max(0, offset - 1)}`;
}
