// The spool's lanes: byte ranges of one blob, each written in order from its start (see spool.ts).

/** One range of the blob being written in order from its start. */
export class Lane {
  /** Bytes in the file from `start`. */
  written = 0;
  pending = Buffer.allocUnsafe(0);
  pendingLength = 0;
  lastFlush = performance.now();
  timer?: NodeJS.Timeout;

  constructor(readonly start: number, public end: number) {}

  get received(): number {
    return this.written + this.pendingLength;
  }
}

/** Where the bytes written contiguously from `pos` end, over all lanes (`pos` itself when it has not arrived). */
export function contiguousFrom(lanes: Lane[], pos: number): number {
  for (let moved = true; moved; ) {
    moved = false;
    for (const lane of lanes) {
      const filled = lane.start + lane.written;
      if (lane.start <= pos && pos < filled) {
        moved = filled > pos;
        pos = filled;
      }
    }
  }
  return pos;
}
