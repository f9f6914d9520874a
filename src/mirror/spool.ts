// A blob arriving from the mesh, kept in a file while it arrives so that any number of readers (the
// local client that asked, a second local request, peers fetching from this partial copy) read it as
// it grows. Nothing read from a spool is trusted: the final byte is held back until the whole blob
// has been verified against its digest, so a response of wrong bytes can never complete.
import { createHash, type Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DigestMismatchError } from '../store/store.js';
import { digestHex } from '../oci/digest.js';

const READ_CHUNK = 1 << 20;
/**
 * What a reader holds read but not yet taken. Little: a reader following a growing spool to a peer
 * buffers whatever its socket cannot take yet, and in a replication pipeline every byte held here is
 * delay added at every hop (1 MiB was a quarter of a second per hop at 100 Mbit/s shared by 5 blobs).
 */
const READ_AHEAD = 64 << 10;
/** Arriving bytes are written to the file in pieces this large: a write per network chunk (64 KiB) cost 15 % of a transfer's CPU. */
const WRITE_CHUNK = 1 << 20;
/**
 * ... but not held longer than this: on a slow link 1 MiB takes seconds, and a node further down a
 * replication pipeline reads only what is in the file. Each hop would add that delay.
 */
const MAX_HOLD_MS = 20;

export class Spool {
  /** Bytes in the file, in order from offset 0. */
  written = 0;
  /** The whole blob's size, once a holder stated it. */
  size?: number;
  verified = false;
  #failed?: Error;
  /** Bumped when the bytes so far turn out wrong and the transfer starts over: older readers must stop. */
  #generation = 0;
  #hash: Hash = createHash('sha256');
  /** Arrived bytes not yet in the file (readers see them once written). */
  #pending = Buffer.allocUnsafe(WRITE_CHUNK);
  #pendingLength = 0;
  #lastFlush = performance.now();
  #timer?: NodeJS.Timeout;
  /** The write under way, if any: appends and flushes wait for it. */
  #flushing: Promise<void> = Promise.resolve();
  #waiters: (() => void)[] = [];
  #sized: Promise<number | undefined>;
  #resolveSized!: (size: number | undefined) => void;

  private constructor(readonly digest: string, readonly path: string, private readonly file: FileHandle) {
    this.#sized = new Promise((resolve) => (this.#resolveSized = resolve));
  }

  static async create(dir: string, digest: string): Promise<Spool> {
    const path = join(dir, `${digestHex(digest)}.${process.pid}.${Date.now()}`);
    return new Spool(digest, path, await open(path, 'w+'));
  }

  /** The blob's size as soon as a holder states it; undefined when the transfer ends without one. */
  sized(): Promise<number | undefined> {
    return this.#sized;
  }

  setSize(size: number): void {
    this.size ??= size;
    this.#resolveSized(this.size);
  }

  async append(chunk: Uint8Array): Promise<void> {
    // A timed flush may be writing the pending bytes: wait until no write is under way or queued.
    for (let write; write !== this.#flushing; ) await (write = this.#flushing);
    this.#hash.update(chunk);
    for (let used = 0; used < chunk.length; ) {
      const n = Math.min(chunk.length - used, WRITE_CHUNK - this.#pendingLength);
      this.#pending.set(chunk.subarray(used, used + n), this.#pendingLength);
      this.#pendingLength += n;
      used += n;
      if (this.#pendingLength === WRITE_CHUNK) await this.flush();
    }
    if (this.#pendingLength === 0) return;
    const held = performance.now() - this.#lastFlush;
    if (held > MAX_HOLD_MS) await this.flush();
    // Also when nothing more arrives for a while (a sender between bursts): readers get these bytes now.
    // A failed write surfaces in the next append() or flush(), which wait for this one.
    else this.#timer ??= setTimeout(() => void this.flush().catch(() => undefined), MAX_HOLD_MS - held);
  }

  /** Bytes received, including those not yet written: where a transfer resumes. */
  get received(): number {
    return this.written + this.#pendingLength;
  }

  /** Writes what has arrived so far to the file, for readers. Writes happen one after another. */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#flushing = this.#flushing.then(() => this.#write());
    return this.#flushing;
  }

  async #write(): Promise<void> {
    this.#lastFlush = performance.now();
    if (this.#pendingLength === 0) return;
    await this.file.write(this.#pending, 0, this.#pendingLength, this.written);
    this.written += this.#pendingLength;
    this.#pendingLength = 0;
    this.#wake();
  }

  /** Marks the bytes verified, or throws DigestMismatchError (size and hash both have to match). */
  verify(): void {
    if (this.#pendingLength > 0) throw new Error('verify() before flush()');
    const actual = `sha256:${this.#hash.digest('hex')}`;
    this.#hash = createHash('sha256');
    if (actual !== this.digest || (this.size !== undefined && this.size !== this.written)) {
      throw new DigestMismatchError(this.digest, actual);
    }
    this.verified = true;
    this.#wake();
  }

  /** Drops what was received (it was wrong); readers of it fail, new readers see the next attempt. */
  async restart(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#flushing.catch(() => undefined); // whatever it wrote is truncated next
    this.#flushing = Promise.resolve();
    this.#generation++;
    this.written = 0;
    this.#pendingLength = 0;
    this.#hash = createHash('sha256');
    await this.file.truncate(0);
    this.#wake();
  }

  /** Ends the transfer unsuccessfully: every reader still waiting fails. */
  fail(err: Error): void {
    this.#failed ??= err;
    this.#resolveSized(undefined);
    this.#wake();
  }

  /** Closes and removes the file; readers that already opened it keep reading their own handle. */
  async dispose(): Promise<void> {
    clearTimeout(this.#timer);
    this.fail(new Error('the transfer has ended'));
    await this.#flushing.catch(() => undefined); // the failure, if any, was the transfer's
    await this.file.close();
    await rm(this.path, { force: true });
  }

  /** Bytes `start..end` (inclusive; default to the end), delivered as they arrive. */
  reader(start = 0, end?: number): Readable {
    return Readable.from(this.#read(start, end), { objectMode: false, highWaterMark: READ_AHEAD });
  }

  async *#read(start: number, end: number | undefined): AsyncGenerator<Buffer> {
    const generation = this.#generation;
    const file = await open(this.path, 'r');
    try {
      for (let pos = start; ; ) {
        if (generation !== this.#generation) throw this.#restarted();
        const last = end ?? (this.size ?? Infinity) - 1;
        if (pos > last) return;
        if (this.#failed && !this.verified) throw this.#failed;
        // Unverified, the final byte stays back: a reader never receives a whole blob that is wrong.
        const available = Math.min(last + 1, this.verified ? this.written : this.written - 1);
        if (pos < available) {
          const buf = Buffer.allocUnsafe(Math.min(READ_CHUNK, available - pos));
          const { bytesRead } = await file.read(buf, 0, buf.length, pos);
          // A restart truncates the file: a read under way then finds nothing where bytes were.
          if (bytesRead === 0) throw generation !== this.#generation ? this.#restarted() : new Error(`spool of ${this.digest} shrank under a reader`);
          pos += bytesRead;
          yield buf.subarray(0, bytesRead);
        } else {
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      }
    } finally {
      await file.close();
    }
  }

  #restarted(): Error {
    return new Error(`the blob from the mesh did not match ${this.digest}`);
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
