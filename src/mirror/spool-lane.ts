// A lane of a Spool (spool.ts).

/**
 * One range of the blob being written in order from its start. Arriving bytes fill a buffer from front to
 * back and are never overwritten: what was flushed from it stays valid, so a reader at the head of the
 * spool takes those bytes from memory (no file read, no copy), and the next buffer is a fresh one.
 */
export class Lane {
  /** Bytes in the file from `start`. */
  written = 0;
  buf = Buffer.allocUnsafe(0);
  /** File position of buf[0]. */
  bufAt: number;
  /** Bytes of buf received; those before `written` (in file terms) are flushed. */
  filled = 0;
  /** The previous buffer, whole and flushed: for readers a little behind the head. */
  previous?: { at: number; bytes: Buffer };
  lastFlush = performance.now();
  timer?: NodeJS.Timeout;

  constructor(readonly start: number, public end: number) {
    this.bufAt = start;
  }

  /** Bytes received but not yet in the file. */
  get pendingLength(): number {
    return this.bufAt + this.filled - (this.start + this.written);
  }

  get received(): number {
    return this.written + this.pendingLength;
  }

  /** Flushed bytes from file position `pos` that this lane still holds in memory, at most `max`. */
  inMemory(pos: number, max: number): Buffer | undefined {
    const held: [at: number, bytes: Buffer][] = [[this.bufAt, this.buf.subarray(0, this.start + this.written - this.bufAt)]];
    if (this.previous) held.push([this.previous.at, this.previous.bytes]);
    for (const [at, bytes] of held) {
      if (at <= pos && pos < at + bytes.length) return bytes.subarray(pos - at, Math.min(bytes.length, pos - at + max));
    }
    return undefined;
  }
}
