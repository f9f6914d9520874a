// The node pushed to sends each tree's root its stripe (replication-plan.ts): k sequences asking different
// ranges of the same blobs, from its store, sharing its upload. TCP shares an upload unevenly among flows,
// for tens of seconds at a time, and the trees cannot make up for it: each root forwards its stripe to k
// children within its own upload, so a root fed slowly holds back its whole tree, and every host needs every
// tree. So such sequences are kept level: each waits, before sending more, while it is more than SLACK_BYTES
// ahead of the one furthest behind. One that has not moved for STALLED_MS (its peer gone or stuck) no longer
// holds the others back. Nor do the first ones start alone: a flow that starts while others fill the upload's
// queue gets a sliver of it for seconds (and its TLS handshake waits behind that queue too), so they wait up
// to JOIN_WAIT_MS for the sequences of every other stripe to be asked. Each root names its group (the push),
// its lane and how many there are (peer-protocol.ts, SequenceLevel).
import type { SequenceLevel } from './peer-protocol.js';

const SLACK_BYTES = 256 << 10;
const STALLED_MS = 2000;
const JOIN_WAIT_MS = 1000;
/** What a levelled sequence sends at a time: at 1 Mbit/s, half a second's worth. */
const LEVEL_CHUNK = 64 << 10;

/** The chunks of a piece of a blob held whole, counted, each once the sequences of the other lanes are not too far behind. */
export async function* levelled(chunks: AsyncIterable<Uint8Array>, sender: LevelSender): AsyncGenerator<Uint8Array> {
  for await (const chunk of chunks) {
    // Levelled in pieces that a slow peer's connection takes in well under STALLED_MS; else whole.
    const step = sender.alone ? chunk.length : LEVEL_CHUNK;
    for (let at = 0; at < chunk.length; at += step) {
      await sender.turn();
      const piece = chunk.subarray(at, at + step);
      yield piece;
      sender.sent(piece.length);
    }
  }
}

interface Group {
  senders: Set<LevelSender>;
  /** Lanes to wait for (as the first sequence of the group named them), and when that sequence came. */
  lanes: number;
  since: number;
}

export class LevelSends {
  readonly #groups = new Map<string, Group>();

  /** A sender of a sequence levelled with the others of `key`, sending lane `lane` of the `lanes` the group has. */
  join({ key, lane, lanes }: SequenceLevel): LevelSender {
    let group = this.#groups.get(key);
    if (!group) this.#groups.set(key, (group = { senders: new Set(), lanes, since: performance.now() }));
    const { senders } = group;
    const sender = new LevelSender(group, lane, () => {
      if (senders.size === 0) this.#groups.delete(key);
    });
    senders.add(sender);
    for (const other of senders) other.wake();
    return sender;
  }

  /** Sequences being kept level now (for tests). */
  get size(): number {
    let n = 0;
    for (const group of this.#groups.values()) n += group.senders.size;
    return n;
  }
}

export class LevelSender {
  #sent = 0;
  #movedAt = performance.now();
  #joined = false;
  #wake?: () => void;

  constructor(private readonly group: Group, private readonly lane: number, private readonly onLeave: () => void) {}

  /**
   * Waits until the sequences of every lane have joined (or JOIN_WAIT_MS since the first did), then until this
   * sender is no more than SLACK_BYTES ahead of the others on other lanes that still move.
   */
  async turn(): Promise<void> {
    while (!this.#joined) {
      const waited = performance.now() - this.group.since;
      this.#joined = this.#lanes() >= this.group.lanes || waited >= JOIN_WAIT_MS;
      if (!this.#joined) await this.#sleep(JOIN_WAIT_MS - waited);
    }
    for (let behind; (behind = this.#furthestBehind()) !== undefined && this.#sent - behind > SLACK_BYTES; ) {
      // Looked at again when another moves or leaves, or once one behind may count as stalled.
      await this.#sleep(STALLED_MS);
    }
    this.#movedAt = performance.now();
  }

  /** Whether sequences on other lanes share the group: otherwise nothing is levelled. */
  get alone(): boolean {
    return this.#lanes() === 1;
  }

  sent(bytes: number): void {
    this.#sent += bytes;
    this.#movedAt = performance.now();
    this.#wakeOthers();
  }

  leave(): void {
    if (!this.group.senders.delete(this)) return;
    this.onLeave();
    this.#wakeOthers();
  }

  /** Ends a wait in turn(), to look again. */
  wake(): void {
    this.#wake?.();
  }

  /** Until `ms` have passed or another sender wakes this one. */
  async #sleep(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.#wake = undefined;
  }

  #lanes(): number {
    return new Set([...this.group.senders].map((s) => s.lane)).size;
  }

  #furthestBehind(): number | undefined {
    const now = performance.now();
    let min: number | undefined;
    for (const other of this.group.senders) {
      if (other.lane === this.lane || now - other.#movedAt > STALLED_MS) continue;
      if (min === undefined || other.#sent < min) min = other.#sent;
    }
    return min;
  }

  #wakeOthers(): void {
    for (const other of this.group.senders) if (other !== this) other.wake();
  }
}
