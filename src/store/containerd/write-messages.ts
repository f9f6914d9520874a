// content.Write WRITE messages encoded by hand: arriving bytes are copied once, straight into the message,
// and the message buffers are reused. The generated encoder copied every chunk twice (joining the small
// pieces an HTTP body arrives in, then encoding) into two fresh 1 MiB buffers per message.

/** WriteContentRequest: action = 1 (varint), ref = 2, offset = 5 (varint), data = 6 (length-delimited). */
const TAG_ACTION = 0x08;
const ACTION_WRITE = 1;
const TAG_REF = 0x12;
const TAG_OFFSET = 0x28;
const TAG_DATA = 0x32;
const MAX_VARINT = 10;

export interface EncodedWrite {
  /** The whole encoded WriteContentRequest; valid until `slots` later messages have been taken. */
  message: Buffer;
  /** Data bytes it carries. */
  length: number;
}

/**
 * Fills messages of at most `chunk` data bytes. Buffers rotate over `slots`: the caller must have had a
 * message answered by containerd before taking the `slots`-th message after it (gRPC has copied it by then).
 */
export class WriteMessages {
  /** action and ref: the same in every message of this upload. */
  private readonly head: Buffer;
  /** Room before the data for the head and the largest offset and length fields. */
  private readonly room: number;
  private readonly buffers: Buffer[] = [];
  private slot = 0;
  private filled = 0;

  constructor(ref: string, private readonly chunk: number, private readonly slots: number) {
    const refBytes = Buffer.from(ref);
    const head = [TAG_ACTION, ACTION_WRITE, TAG_REF];
    varint(head, refBytes.length);
    this.head = Buffer.concat([Buffer.from(head), refBytes]);
    this.room = this.head.length + 2 * (1 + MAX_VARINT);
  }

  get full(): boolean {
    return this.filled === this.chunk;
  }

  /** Data bytes in the message being filled. */
  get pending(): number {
    return this.filled;
  }

  /** Copies as much of `data` as fits into the current message; returns what did not fit. */
  fill(data: Uint8Array): Uint8Array {
    const n = Math.min(data.length, this.chunk - this.filled);
    this.current().set(n === data.length ? data : data.subarray(0, n), this.room + this.filled);
    this.filled += n;
    return data.subarray(n);
  }

  /** The filled message, written at `offset` of the upload; the next fill starts a new one. */
  take(offset: number): EncodedWrite {
    const buf = this.current();
    const tail = [TAG_OFFSET];
    varint(tail, offset);
    tail.push(TAG_DATA);
    varint(tail, this.filled);
    const start = this.room - tail.length - this.head.length;
    this.head.copy(buf, start);
    buf.set(tail, this.room - tail.length);
    const out = { message: buf.subarray(start, this.room + this.filled), length: this.filled };
    this.slot = (this.slot + 1) % this.slots;
    this.filled = 0;
    return out;
  }

  private current(): Buffer {
    return (this.buffers[this.slot] ??= Buffer.allocUnsafe(this.room + this.chunk));
  }
}

/** Protobuf base-128 varint of a non-negative integer up to 2^53 (offsets exceed 32 bits). */
function varint(out: number[], n: number): void {
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
}
