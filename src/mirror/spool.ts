// A blob arriving from the mesh, kept in a file while it arrives so that any number of readers (the
// local client that asked, a second local request, peers fetching from this partial copy) read it as
// it grows. Nothing read from a spool is trusted: the final byte is held back until the whole blob
// has been verified against its digest, so a response of wrong bytes can never complete.
// A blob may arrive in lanes (byte ranges from different feeders at once, see replication-plan.ts), each written
// in order from its start; readers and the digest take the bytes contiguous from the start as they become so.
import { createHash, type Hash } from 'node:crypto';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DigestMismatchError } from '../store/store.js';
import { digestHex } from '../oci/digest.js';
import { contiguousFrom, Lane } from './spool-lane.js';

const READ_CHUNK = 1 << 20;
/** Lent buffers are smaller: two stay allocated for as long as the reader runs. */
const LEND_CHUNK = 256 << 10;
/** What a reader holds read but not yet taken: little, as every byte held is delay for whoever reads after it. */
const READ_AHEAD = 64 << 10;
/** Arriving bytes are written to the file in pieces this large: a write per network chunk (64 KiB) cost 15 % of a transfer's CPU. */
const WRITE_CHUNK = 1 << 20;
/** ... but not held longer than this: readers (a replication tree's next hop) read only what is in the file. */
const MAX_HOLD_MS = 20;

/** This node could not write a spool (its disk is full): no other holder would do better, the transfer ends. */
export class SpoolWriteError extends Error {
  constructor(digest: string, cause: unknown) {
    super(`could not write the spool of ${digest}: ${(cause as Error).message}`, { cause });
    this.name = 'SpoolWriteError';
  }
}

export class Spool {
  /** The whole blob's size, once a holder stated it. */
  size?: number;
  verified = false;
  #failed?: Error;
  /** Bumped when the bytes so far turn out wrong and the transfer starts over: older readers must stop. */
  #generation = 0;
  #lanes: Lane[];
  #hash: Hash = createHash('sha256');
  /** Bytes from the start that went into the hash. */
  #hashed = 0;
  /** Writes happen one after another: appends and flushes wait for the one under way. */
  #flushing: Promise<void> = Promise.resolve();
  #waiters: (() => void)[] = [];
  #resolveSized!: (size: number | undefined) => void;
  #sized = new Promise<number | undefined>((resolve) => (this.#resolveSized = resolve));
  #sizeKnown = false;

  /** `maxBytes`: the largest blob taken, whatever its holders say (they may send for ever). */
  private constructor(readonly digest: string, readonly path: string, private readonly file: FileHandle, private readonly maxBytes: number) {
    this.#lanes = [new Lane(0, maxBytes)];
  }

  static async create(dir: string, digest: string, maxBytes = Infinity): Promise<Spool> {
    const path = join(dir, `${digestHex(digest)}.${process.pid}.${Date.now()}`);
    return new Spool(digest, path, await open(path, 'w+'), maxBytes);
  }

  /** The blob's size as soon as a holder states it; undefined when the transfer ends without one. */
  sized(): Promise<number | undefined> {
    return this.#sized;
  }

  /** `known`: the push's manifest says so; a holder's word (`known` false) goes with its bytes if they were wrong. */
  setSize(size: number, known = false): void {
    this.size ??= size;
    this.#sizeKnown ||= known;
    // In one lane, bytes past the size are wrong bytes: append() refuses them.
    const [only, ...more] = this.#lanes;
    if (more.length === 0 && only.received <= this.size) only.end = Math.min(only.end, this.size);
    this.#resolveSized(this.size);
  }

  /** Refuses a blob said to be larger than this node takes, before a byte of it is read (its bytes past that would be). */
  refuseOver(size: number): void {
    if (size > this.maxBytes) throw new Error(`${this.digest} is said to hold ${size} bytes, more than the ${this.maxBytes} taken`);
  }

  /** Receives the blob in these lanes (`[offset, length]`, covering it) instead of in one, before anything arrived. */
  useLanes(ranges: [offset: number, length: number][]): void {
    if (this.received > 0) throw new Error('lanes are chosen before any byte arrives');
    this.refuseOver(ranges.reduce((n, [, length]) => n + length, 0));
    this.#lanes = ranges.map(([offset, length]) => new Lane(offset, offset + length));
  }

  /** Ends lane `i` at `at`, where none of its bytes are yet, and makes the rest of its range a lane; returns that lane's index. */
  splitLane(i: number, at: number): number {
    const lane = this.#lanes[i];
    if (at < lane.start + lane.received || at >= lane.end) throw new Error(`lane ${i} of ${this.digest} cannot be split at ${at}`);
    this.#lanes.push(new Lane(at, lane.end));
    lane.end = at;
    return this.#lanes.length - 1;
  }

  /** Bytes in the file contiguous from the start. */
  get written(): number {
    return contiguousFrom(this.#lanes, 0);
  }

  /** Bytes received, including those not yet written: where a transfer in one lane resumes. */
  get received(): number {
    return this.#lanes.reduce((n, lane) => n + lane.received, 0);
  }

  /** Bytes of lane `i` received: where its transfer resumes. */
  laneReceived(i: number): number {
    return this.#lanes[i].received;
  }

  /** Where lane `i` begins and ends (it ends earlier once split). */
  laneRange(i: number): { start: number; end: number } {
    const { start, end } = this.#lanes[i];
    return { start, end };
  }

  /** The lane whose range holds byte `at`. */
  laneAt(at: number): number {
    return this.#lanes.findIndex((lane) => lane.start <= at && at < lane.end);
  }

  /** Appends to lane `i` (the only one unless lanes were chosen). */
  async append(chunk: Uint8Array, i = 0): Promise<void> {
    const lane = this.#lanes[i];
    const more = () => new DigestMismatchError(this.digest, `more bytes than its lane ${i}, ${lane.start} to ${lane.end}, holds`);
    if (lane.start + lane.received + chunk.length > lane.end) throw more();
    if ((await this.appendWithin(chunk, i)) < chunk.length) throw more();
  }

  /**
   * Appends as much of `chunk` to lane `i` as the lane has room for as it is written (the lane may be split
   * meanwhile, its end taken by another sender); returns how many bytes that was.
   */
  async appendWithin(chunk: Uint8Array, i = 0): Promise<number> {
    const lane = this.#lanes[i];
    // A timed flush may be writing the pending bytes: wait until no write is under way or queued.
    for (let write; write !== this.#flushing; ) await (write = this.#flushing);
    if (lane.pending.length === 0) lane.pending = Buffer.allocUnsafe(WRITE_CHUNK);
    let used = 0;
    for (let n; used < chunk.length && (n = Math.min(chunk.length - used, WRITE_CHUNK - lane.pendingLength, lane.end - lane.start - lane.received)) > 0; ) {
      lane.pending.set(chunk.subarray(used, used + n), lane.pendingLength);
      lane.pendingLength += n;
      used += n;
      if (lane.pendingLength === WRITE_CHUNK) await this.flush();
    }
    if (lane.pendingLength === 0) return used;
    const held = performance.now() - lane.lastFlush;
    if (held > MAX_HOLD_MS) await this.flush();
    // Also when nothing more arrives for a while (a sender between bursts): readers get these bytes now.
    // A failed write surfaces in the next append() or flush(), which wait for this one.
    else lane.timer ??= setTimeout(() => void this.flush().catch(() => undefined), MAX_HOLD_MS - held);
    return used;
  }

  /** Writes what has arrived so far to the file, for readers. */
  flush(): Promise<void> {
    this.#flushing = this.#flushing.then(() => this.#write().catch((err: unknown) => {
      throw new SpoolWriteError(this.digest, err);
    }));
    return this.#flushing;
  }

  async #write(): Promise<void> {
    for (const lane of this.#lanes) {
      clearTimeout(lane.timer);
      lane.timer = undefined;
      lane.lastFlush = performance.now();
      if (lane.pendingLength === 0) continue;
      const at = lane.start + lane.written;
      const bytes = lane.pending.subarray(0, lane.pendingLength);
      // A write may be short (a disk filling up): the rest is written again, and fails there if it must.
      for (let done = 0, n = 0; done < bytes.length; done += n) {
        if ((n = (await this.file.write(bytes, done, bytes.length - done, at + done)).bytesWritten) === 0) throw new Error(`nothing written at ${at + done}`);
      }
      if (at === this.#hashed) {
        this.#hash.update(bytes);
        this.#hashed += bytes.length;
      }
      lane.written += lane.pendingLength;
      lane.pendingLength = 0;
    }
    await this.#hashContiguous();
    this.#wake();
  }

  /** Hashes the bytes that became contiguous from the start, reading back those written out of order. */
  async #hashContiguous(): Promise<void> {
    const until = this.written;
    if (this.#hashed >= until) return;
    const buf = Buffer.allocUnsafe(READ_CHUNK);
    while (this.#hashed < until) {
      const { bytesRead } = await this.file.read(buf, 0, Math.min(buf.length, until - this.#hashed), this.#hashed);
      if (bytesRead === 0) throw new Error(`spool of ${this.digest} shrank while hashing`);
      this.#hash.update(buf.subarray(0, bytesRead));
      this.#hashed += bytesRead;
    }
  }

  /** Marks the bytes verified, or throws DigestMismatchError (size and hash both have to match). */
  verify(): void {
    if (this.#lanes.some((lane) => lane.pendingLength > 0)) throw new Error('verify() before flush()');
    const written = this.written;
    if (this.#hashed !== written || (this.size !== undefined && this.size !== written)) {
      throw new DigestMismatchError(this.digest, `${written} contiguous bytes of ${this.size ?? 'an unknown size'}`);
    }
    const actual = `sha256:${this.#hash.digest('hex')}`;
    this.#hash = createHash('sha256');
    this.#hashed = 0;
    if (actual !== this.digest) throw new DigestMismatchError(this.digest, actual);
    this.setSize(written); // when no holder stated it (or its word went with wrong bytes): readers end here
    this.verified = true;
    this.#wake();
  }

  /** Drops what was received (it was wrong); readers of it fail, new readers see the next attempt, in one lane. */
  async restart(): Promise<void> {
    for (const lane of this.#lanes) clearTimeout(lane.timer);
    await this.#flushing.catch(() => undefined); // whatever it wrote is truncated next
    this.#flushing = Promise.resolve();
    this.#generation++;
    this.#hash = createHash('sha256');
    this.#hashed = 0;
    if (!this.#sizeKnown) {
      this.size = undefined;
      this.#sized = new Promise((resolve) => (this.#resolveSized = resolve));
    }
    this.#lanes = [new Lane(0, Math.min(this.size ?? Infinity, this.maxBytes))];
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
    for (const lane of this.#lanes) clearTimeout(lane.timer);
    this.fail(new Error('the transfer has ended'));
    await this.#flushing.catch(() => undefined); // the failure, if any, was the transfer's
    await this.file.close();
    await rm(this.path, { force: true });
  }

  /**
   * Bytes `start..end` (inclusive; default to the end), delivered as they arrive. `forPeer`: a member that verifies every
   * blob itself gets the final byte before this copy is verified, so no copy down a tree waits for every copy above it.
   */
  reader(start = 0, end?: number, { forPeer = false } = {}): Readable {
    return Readable.from(this.#read(start, end, forPeer), { objectMode: false, highWaterMark: READ_AHEAD });
  }

  /** reader()'s bytes, read into two buffers in turn: each chunk is refilled once the next but one is asked for. */
  lend(start = 0, end?: number, { forPeer = false } = {}): AsyncGenerator<Buffer> {
    return this.#read(start, end, forPeer, []);
  }

  async *#read(start: number, end: number | undefined, forPeer: boolean, lent?: Buffer[]): AsyncGenerator<Buffer> {
    const generation = this.#generation;
    const file = await open(this.path, 'r');
    try {
      for (let pos = start, turn = 0; ; ) {
        if (generation !== this.#generation) throw this.#restarted();
        const last = end ?? (this.size ?? Infinity) - 1;
        if (pos > last) return;
        if (this.#failed && !this.verified) throw this.#failed;
        // Unverified, the blob's final byte stays back: a reader never receives a whole blob that is wrong.
        const here = contiguousFrom(this.#lanes, pos);
        const whole = this.size === undefined || here >= this.size;
        const available = Math.min(last + 1, whole && !this.verified && !forPeer ? here - 1 : here);
        if (pos < available) {
          const length = Math.min(lent ? LEND_CHUNK : READ_CHUNK, available - pos);
          const buf = lent ? (lent[turn++ & 1] ??= Buffer.allocUnsafeSlow(Math.min(LEND_CHUNK, last + 1 - start))) : Buffer.allocUnsafe(length);
          const { bytesRead } = await file.read(buf, 0, length, pos);
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
