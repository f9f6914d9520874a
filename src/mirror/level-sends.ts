// The node pushed to sends each tree's root its stripe (replication-plan.ts): k sequences asking different
// ranges of the same blobs, from its store, sharing its upload. TCP shares an upload unevenly among flows,
// for tens of seconds at a time, and the trees cannot make up for it: each root forwards its stripe to k
// children within its own upload, so a root fed slowly holds back its whole tree, and every host needs every
// tree. So such sequences are kept level: each waits, before sending more, while it is more than SLACK_BYTES
// ahead of the one furthest behind. One that has not moved for STALLED_MS (its peer gone or stuck) no longer
// holds the others back.

const SLACK_BYTES = 256 << 10;
const STALLED_MS = 2000;
/** What a levelled sequence sends at a time: at 1 Mbit/s, half a second's worth. */
export const LEVEL_CHUNK = 64 << 10;

export class LevelSends {
  readonly #groups = new Map<string, Set<LevelSender>>();

  /** A sender of the sequences of `key` (the blobs asked), sending the lane starting at `lane`. */
  join(key: string, lane: number): LevelSender {
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = new Set()));
    const sender = new LevelSender(group, lane, () => {
      if (group.size === 0) this.#groups.delete(key);
    });
    group.add(sender);
    return sender;
  }

  /** Sequences being kept level now (for tests). */
  get size(): number {
    let n = 0;
    for (const group of this.#groups.values()) n += group.size;
    return n;
  }
}

export class LevelSender {
  #sent = 0;
  #movedAt = performance.now();
  #wake?: () => void;

  constructor(private readonly group: Set<LevelSender>, private readonly lane: number, private readonly onLeave: () => void) {}

  /** Waits until this sender is no more than SLACK_BYTES ahead of the others on other lanes that still move. */
  async turn(): Promise<void> {
    for (let behind; (behind = this.#furthestBehind()) !== undefined && this.#sent - behind > SLACK_BYTES; ) {
      // Looked at again when another moves or leaves, or once one behind may count as stalled.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STALLED_MS);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
    this.#movedAt = performance.now();
  }

  /** Whether sequences on other lanes share the group: otherwise nothing is levelled. */
  get alone(): boolean {
    for (const other of this.group) if (other.lane !== this.lane) return false;
    return true;
  }

  sent(bytes: number): void {
    this.#sent += bytes;
    this.#movedAt = performance.now();
    this.#wakeOthers();
  }

  leave(): void {
    if (!this.group.delete(this)) return;
    this.onLeave();
    this.#wakeOthers();
  }

  #furthestBehind(): number | undefined {
    const now = performance.now();
    let min: number | undefined;
    for (const other of this.group) {
      if (other.lane === this.lane || now - other.#movedAt > STALLED_MS) continue;
      if (min === undefined || other.#sent < min) min = other.#sent;
    }
    return min;
  }

  #wakeOthers(): void {
    for (const other of this.group) if (other !== this) other.#wake?.();
  }
}
