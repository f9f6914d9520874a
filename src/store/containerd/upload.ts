// An upload into containerd: one content.Write stream under a lease of its own, which also holds the blob once
// committed when the caller named its digest at the start (else the blob goes under a blob lease at commit).
// Protocol (containerd 1.6): STAT(ref) -> WRITE chunks at offsets, reading every response -> COMMIT with
// offset = total size (offset 0 would truncate) and the expected digest. Nothing is visible before COMMIT.
import type { ClientDuplexStream } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { DigestMismatchError, SizeMismatchError, StoreUnavailableError, UploadClosedError, type BlobInfo, type Upload } from '../store.js';
import { Code, hasCode, type ContainerdClient } from './client.js';
import { createLease, deleteLease, leaseContent, leasedBlob, newLeaseId, type LaterReleases } from './leases.js';
import { WriteMessages } from './write-messages.js';
import { Scavenger } from '../../util/scavenge.js';

const CHUNK = 1 << 20;
/** grpc-js copies each message into a fresh buffer: see Scavenger. One for all uploads of this process. */
const scavenger = new Scavenger(8 * CHUNK);
/** WRITE messages in flight before we wait for the oldest response. */
const WINDOW = 4;
/**
 * How long containerd may take to answer a message of an upload (a COMMIT syncs the whole blob to disk): past it,
 * a containerd that hangs (its disk stuck) ends the upload as unavailable instead of holding it, and shutdown, for ever.
 */
export const WRITE_RESPONSE_MS = 120_000;

interface WriteRequest {
  action: 'STAT' | 'WRITE' | 'COMMIT';
  ref: string;
  offset?: number;
  total?: number;
  expected?: string;
  labels?: Record<string, string>;
}
interface WriteResponse { action: string; offset: number; total: number; digest: string }

export interface UploadHost {
  readonly client: ContainerdClient;
  readonly logger: Logger;
  stat(digest: string): Promise<BlobInfo | undefined>;
  /** Called after a commit that created the blob (containerd 1.6 emits no event for it). */
  blobAdded(digest: string): void;
  /** Where a lease no longer needed is released without waiting for it. */
  readonly releases: LaterReleases;
  /** The leases of uploads under way: each upload's from its begin to its commit or abort. */
  readonly writing: Set<string>;
  /** WRITE_RESPONSE_MS, unless a test wants less. */
  readonly writeResponseMs: number;
}

/** A new lease of an upload under way (`writing`), holding `digest` when given. */
async function takeLease(host: UploadHost, id: string, digest: string | undefined): Promise<void> {
  host.writing.add(id);
  try {
    await createLease(host.client, id);
    if (digest) await leaseContent(host.client, id, digest);
  } catch (err) {
    host.writing.delete(id);
    throw err;
  }
}

export class ContainerdUpload implements Upload {
  private confirmed = 0;
  private channel?: WriteChannel;
  private finished = false;

  private constructor(private readonly host: UploadHost, readonly id: string) {}

  /** The lease id doubles as the ingest ref. */
  static async begin(digest: string | undefined, host: UploadHost): Promise<ContainerdUpload> {
    const id = newLeaseId(digest);
    // A blob named now goes under the lease now (see commit), a transaction off the upload's last moments.
    await takeLease(host, id, leasedBlob(id));
    return new ContainerdUpload(host, id);
  }

  get offset(): number {
    return this.confirmed;
  }

  async append(source: AsyncIterable<Uint8Array>): Promise<number> {
    const ch = await this.open();
    const inflight: Promise<WriteResponse>[] = [];
    // One more buffer than messages in flight: a buffer is refilled only after its message was answered.
    const messages = new WriteMessages(this.id, CHUNK, WINDOW + 1);
    let sent = this.confirmed;
    const send = async () => {
      const { message, length } = messages.take(sent);
      inflight.push(ch.send(message));
      scavenger.moved(message.length);
      sent += length;
      if (inflight.length >= WINDOW) this.confirmed = (await inflight.shift()!).offset;
    };
    try {
      try {
        for await (let chunk of source) {
          while (chunk.length) {
            chunk = messages.fill(chunk);
            if (messages.full) await send();
          }
        }
      } finally {
        // Also after a broken source: the bytes that arrived are sent, as the other stores keep them, so the
        // client resumes after them rather than after the last full message.
        if (messages.pending) await send();
      }
      while (inflight.length) this.confirmed = (await inflight.shift()!).offset;
      return this.confirmed;
    } catch (err) {
      await Promise.allSettled(inflight);
      // Ended meanwhile (abort closed the stream): the request lost its upload, containerd did not fail.
      if (this.finished) throw new UploadClosedError(this.id);
      await this.resync();
      throw err;
    }
  }

  async commit(expected: { digest: string; size?: number }, labels: Record<string, string> = {}): Promise<BlobInfo> {
    const ch = await this.open();
    // containerd answers AlreadyExists for an existing digest *without* checking the bytes we sent
    // (1.6 contentserver checks Info(expected) before committing), so verify what it holds first.
    const held = await ch.send({ action: 'STAT', ref: this.id });
    this.confirmed = held.offset;
    if (expected.size !== undefined && held.offset !== expected.size) throw new SizeMismatchError(expected.size, held.offset);
    if (held.digest !== expected.digest) throw new DigestMismatchError(expected.digest, held.digest);
    // The digest goes under a lease of that blob *before* COMMIT: on AlreadyExists 1.6 leaves the existing blob
    // out of the writer's lease, and an unreferenced one (its manifest just deleted) could be collected before
    // it is held. An upload begun without the digest takes a lease of the blob now, deleted if the commit fails.
    const blobLease = leasedBlob(this.id) === expected.digest ? undefined : newLeaseId(expected.digest);
    if (blobLease) await takeLease(this.host, blobLease, expected.digest);
    let created = true;
    try {
      await ch.send({ action: 'COMMIT', ref: this.id, offset: held.offset, total: held.offset, expected: expected.digest, labels });
    } catch (err) {
      if (!hasCode(err, Code.ALREADY_EXISTS)) {
        this.channel = undefined; // a failed commit closes containerd's writer
        if (blobLease) {
          await deleteLease(this.host.client, blobLease, this.host.logger).catch((cleanup: unknown) =>
            this.host.logger.warn({ err: cleanup, lease: blobLease }, 'could not delete the lease of a blob whose commit failed; containerd drops it when it expires'));
          this.host.writing.delete(blobLease);
        }
        throw commitError(err, expected);
      }
      created = false; // containerd dropped our ingest; the blob it already had has the bytes we verified
    }
    this.finished = true;
    this.host.writing.delete(this.id);
    if (blobLease) this.host.writing.delete(blobLease);
    this.channel = undefined;
    // The blob lease holds the blob until a tag does; the upload's own lease, which does too now, is not needed.
    if (blobLease) this.host.releases.add(deleteLease(this.host.client, this.id, this.host.logger), { lease: this.id });
    if (created) {
      this.host.blobAdded(expected.digest);
      return { digest: expected.digest, size: held.offset, labels };
    }
    // The blob it already had keeps its own labels.
    const info = await this.host.stat(expected.digest);
    if (!info) throw new Error(`containerd lost ${expected.digest} right after committing it (socket ${this.host.client.socket})`);
    return info;
  }

  async abort(): Promise<void> {
    if (this.finished) return;
    this.finished = true;
    await this.channel?.close();
    this.channel = undefined;
    try {
      await this.host.client.unary('content', 'Abort', { ref: this.id }, this.id);
    } catch (err) {
      // NotFound: nothing was ever written under this ref.
      if (!hasCode(err, Code.NOT_FOUND)) this.host.logger.warn({ err, ref: this.id }, 'containerd abort failed; the lease release below frees the ingest');
    }
    // Never throws: an abort follows the error that matters (a digest mismatch is the client's 400, not this 503).
    await deleteLease(this.host.client, this.id, this.host.logger).catch((err: unknown) =>
      this.host.logger.warn({ err, lease: this.id }, 'could not delete the lease of an aborted upload; containerd drops it when it expires'));
    this.host.writing.delete(this.id);
  }

  /** The live write stream, (re)opened with a STAT that tells us what containerd really holds. */
  private async open(): Promise<WriteChannel> {
    if (this.finished) throw new UploadClosedError(this.id);
    if (this.channel && !this.channel.failed) return this.channel;
    for (let attempt = 1; ; attempt++) {
      const ch = new WriteChannel(this.host.client, this.id, this.host.writeResponseMs);
      try {
        this.confirmed = (await ch.send({ action: 'STAT', ref: this.id })).offset;
        return (this.channel = ch);
      } catch (err) {
        // The previous stream may still hold the ref's lock for a moment (Unavailable "ref ... locked").
        if (!hasCode(err, Code.UNAVAILABLE) || attempt === 5) throw err;
        await new Promise((r) => setTimeout(r, 50 * attempt));
      }
    }
  }

  /** After a failed append, re-read the offset containerd holds so a resumed append continues from there. */
  private async resync(): Promise<void> {
    try {
      if (this.channel && !this.channel.failed) {
        this.confirmed = (await this.channel.send({ action: 'STAT', ref: this.id })).offset;
      } else {
        await this.open();
      }
    } catch (err) {
      this.host.logger.warn({ err, ref: this.id, offset: this.confirmed }, 'could not re-read upload offset from containerd');
    }
  }
}

/** content.Write as request/response pairs: containerd answers every message, in order, each within `responseMs`. */
class WriteChannel {
  private readonly waiting: { resolve(r: WriteResponse): void; reject(e: Error): void }[] = [];
  private readonly call: ClientDuplexStream<WriteRequest | Buffer, WriteResponse>;
  private failure?: Error;
  private ended: Promise<void>;
  /** When containerd last answered, or was first asked after answering everything. */
  private progress = 0;
  /** Armed while answers are awaited: one timer a channel, not one a message. */
  private timer?: NodeJS.Timeout;

  constructor(client: ContainerdClient, private readonly ref: string, private readonly responseMs: number) {
    this.call = client.bidi<WriteRequest | Buffer, WriteResponse>('content', 'Write', { lease: ref });
    this.call.on('data', (res: WriteResponse) => {
      this.progress = performance.now();
      this.waiting.shift()?.resolve(res);
    });
    this.call.on('error', (err) => this.fail(client.error(`content.Write ${ref}`, err)));
    this.ended = new Promise((resolve) => this.call.on('status', () => {
      this.fail(new Error(`containerd closed the write stream of ${ref} (socket ${client.socket})`));
      resolve();
    }));
  }

  get failed(): boolean {
    return this.failure !== undefined;
  }

  /** A request, or a WRITE message already encoded (WriteMessages). */
  send(req: WriteRequest | Buffer): Promise<WriteResponse> {
    const res = this.failure ? Promise.reject(this.failure) : new Promise<WriteResponse>((resolve, reject) => {
      if (this.waiting.length === 0) this.progress = performance.now();
      this.waiting.push({ resolve, reject });
      this.call.write(req);
      this.timer ??= setTimeout(() => this.check(), this.responseMs);
    });
    // Pipelined writes fail together; whoever awaits sees the error, the rest must not count as unhandled.
    res.catch(() => {});
    return res;
  }

  /** Ends the stream and waits for containerd to release the ref: `responseMs` at most, then the stream is cancelled. */
  async close(): Promise<void> {
    if (!this.failed) this.call.end();
    const timer = setTimeout(() => this.call.cancel(), this.responseMs);
    await this.ended;
    clearTimeout(timer);
  }

  private fail(err: Error): void {
    this.failure ??= err;
    clearTimeout(this.timer);
    for (const w of this.waiting.splice(0)) w.reject(this.failure);
  }

  private check(): void {
    this.timer = undefined;
    if (this.waiting.length === 0 || this.failure) return;
    const quiet = performance.now() - this.progress;
    if (quiet < this.responseMs) {
      this.timer = setTimeout(() => this.check(), this.responseMs - quiet);
      return;
    }
    this.fail(new StoreUnavailableError(`containerd did not answer content.Write ${this.ref} within ${this.responseMs / 1000} s`));
    this.call.cancel(); // its status ends the stream: close() does not wait on a hung containerd
  }
}

/** containerd reports verification failures as FailedPrecondition with a message naming both values. */
function commitError(err: unknown, expected: { digest: string; size?: number }): Error {
  if (!hasCode(err, Code.FAILED_PRECONDITION)) return err as Error;
  const msg = (err as Error).message;
  const digest = /unexpected commit digest (\S+), expected/.exec(msg);
  if (digest) return new DigestMismatchError(expected.digest, digest[1]);
  const size = /unexpected commit size (\d+)|failed size validation: (\d+)/.exec(msg);
  if (size && expected.size !== undefined) return new SizeMismatchError(expected.size, Number(size[1] ?? size[2]));
  return err as Error;
}
