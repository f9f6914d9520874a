// A blob taken in lanes: byte ranges covering it, each from a feeder already sending it (replication's
// stripes, see src/node/replication-plan.ts), all at once into one spool. A lane whose feeder breaks off or
// sends nothing is finished from other holders, from where it stopped, its stand-ins first (several at once
// when the plan says so, in chunks taken in order); the whole is verified as usual.
import type { Logger } from 'pino';
import type { BlobSource } from './blob-sequence.js';
import type { Spool } from './spool.js';

/** One range of a blob and where its bytes come from, once that feeder's stream reaches it. */
export interface Lane {
  offset: number;
  length: number;
  source: Promise<BlobSource | undefined>;
  /** Who to ask first for what the feeder does not send (replication-plan.ts, standInsOf). */
  standIns?: StandIns;
}

/** Whom to ask for the rest of a stripe whose feeder stopped, best first, and how many of them at once (at most all of them). */
export interface StandIns {
  ask: string[];
  atOnce: number;
  /**
   * Shares instead: the rest is cut in CHUNK_BYTES chunks on a grid from the lane's start, and chunk n is
   * asked first of `byChunk[n % byChunk.length]` (then `ask`), all of them at once, a round at a time.
   */
  byChunk?: string[];
}

/** What each of several stand-ins is asked for at a time: small, so that the bytes still arrive nearly in order for whoever reads this copy. */
export const CHUNK_BYTES = 256 << 10;
/** Stand-ins asked at once for the rest once the one asked alone failed: whoever is next would otherwise send a whole stream more. */
export const AFTER_A_STAND_IN = 2;
/**
 * A stand-in asked alone that has not answered within this long is taken for gone (a host that died does not
 * even refuse the connection): the rest then comes from the next ones, without waiting out the stall timeout.
 * A live stand-in answers at once, as it holds the stripe about as far as anyone.
 */
export const STAND_IN_ANSWER_MS = 500;

export interface LanedBlob {
  size: number;
  lanes: Lane[];
}

/**
 * The bytes from `at()` to `end` (inclusive) from other holders, `first` asked first, noting in `used` who sent
 * them. `only`: none but `first`, each given up when it has not answered within `answerWithinMs` (when given).
 */
export type RangeSource = (at: () => number, end: number, used: Set<string>, first: string[], only?: Only) => AsyncIterable<Uint8Array>;
export interface Only {
  answerWithinMs?: number;
}

export interface LaneDeps {
  /** Feeders' bytes go through this node's bandwidth limit. */
  limited(bytes: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>;
  rest: RangeSource;
  log: Logger;
}

/** Fills the spool from the lanes; the peers that sent bytes end up in `used`. Throws when a lane could not be finished. */
export async function fillLanes(spool: Spool, blob: LanedBlob, used: Set<string>, deps: LaneDeps): Promise<void> {
  spool.setSize(blob.size);
  if (blob.lanes.length > 1) spool.useLanes(blob.lanes.map((l) => [l.offset, l.length]));
  // Once one lane fails, the others stop too: the spool starts over, and no lane may write into it after that.
  const stop = new AbortController();
  const results = await Promise.allSettled(blob.lanes.map((lane, i) =>
    fillLane(spool, i, lane, used, deps, stop.signal).catch((err: Error) => {
      stop.abort(err);
      throw err;
    })));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  await spool.flush();
}

async function fillLane(spool: Spool, i: number, lane: Lane, used: Set<string>, deps: LaneDeps, stop: AbortSignal): Promise<void> {
  const source = await lane.source;
  if (source) {
    used.add(source.peer);
    try {
      for await (const chunk of deps.limited(source.bytes)) {
        stop.throwIfAborted();
        await spool.append(chunk, i);
      }
    } catch (err) {
      stop.throwIfAborted();
      deps.log.warn({ digest: spool.digest, peer: source.peer, offset: lane.offset + spool.laneReceived(i), err: (err as Error).message },
        'a feeder broke off; asking holders for the rest of its stripe');
    }
  }
  if (spool.laneReceived(i) === lane.length) return;
  const { ask, atOnce, byChunk } = lane.standIns ?? { ask: [], atOnce: 1 };
  if (byChunk) return inShares(spool, i, lane, byChunk, ask, used, deps, stop);
  if (atOnce > 1 || ask.length === 0) return fromSeveral(spool, i, lane, ask, atOnce, used, deps, stop);
  // The first stand-in alone; once it fails (or does not answer: a dead host), the rest from the next ones at once.
  const end = lane.offset + lane.length;
  try {
    return await restInto(spool, i, lane.offset, end, ask.slice(0, 1), used, deps, stop, { answerWithinMs: STAND_IN_ANSWER_MS });
  } catch (err) {
    stop.throwIfAborted();
    deps.log.warn({ digest: spool.digest, peer: ask[0], offset: lane.offset + spool.laneReceived(i), err: (err as Error).message },
      'a stand-in did not send the rest of a stripe; asking the next ones at once');
  }
  return fromSeveral(spool, i, lane, ask.slice(1), AFTER_A_STAND_IN, used, deps, stop);
}

/** The rest of lane `i` from `wanted` of `ask` at once (at most all of them), chunk after chunk in order, each in a lane of the spool of its own. */
async function fromSeveral(spool: Spool, i: number, lane: Lane, ask: string[], wanted: number, used: Set<string>, deps: LaneDeps, stop: AbortSignal): Promise<void> {
  const end = lane.offset + lane.length;
  const atOnce = Math.min(wanted, ask.length);
  if (atOnce <= 1) return restInto(spool, i, lane.offset, end, ask, used, deps, stop);
  let next = lane.offset + spool.laneReceived(i);
  let tail = i;
  await Promise.all(Array.from({ length: atOnce }, async (_, w) => {
    const first = [...ask.slice(w), ...ask.slice(0, w)];
    while (next < end) {
      const [from, into] = [next, tail];
      next = Math.min(end, next + CHUNK_BYTES);
      if (next < end) tail = spool.splitLane(tail, next);
      await restInto(spool, into, into === i ? lane.offset : from, next, first, used, deps, stop);
    }
  }));
}

/**
 * The rest of lane `i` in shares (StandIns.byChunk): CHUNK_BYTES chunks on a grid from the lane's start, the
 * same on every node taking these shares, chunk n from `byChunk[n % byChunk.length]` (then `ask`, then any
 * holder), a round of one chunk per share at a time. A share's source that failed once is passed over after.
 */
async function inShares(spool: Spool, i: number, lane: Lane, byChunk: string[], ask: string[], used: Set<string>, deps: LaneDeps, stop: AbortSignal): Promise<void> {
  const end = lane.offset + lane.length;
  const failed = new Set<string>();
  let from = lane.offset + spool.laneReceived(i);
  let tail = i;
  for (let n = Math.floor((from - lane.offset) / CHUNK_BYTES); from < end; ) {
    const round: Promise<void>[] = [];
    for (let r = 0; r < byChunk.length && from < end; r++, n++) {
      const to = Math.min(end, lane.offset + (n + 1) * CHUNK_BYTES);
      const into = tail;
      if (to < end) tail = spool.splitLane(tail, to);
      const source = byChunk[n % byChunk.length];
      const start = into === i ? lane.offset : from;
      const fromShare = failed.has(source) ? Promise.reject(new Error('failed before')) : restInto(spool, into, start, to, [source], used, deps, stop, {});
      round.push(fromShare.catch((err: Error) => {
        stop.throwIfAborted();
        if (!failed.has(source)) deps.log.warn({ digest: spool.digest, peer: source, err: err.message }, 'a share of a stripe did not come; its chunks from the stand-ins');
        failed.add(source);
        return restInto(spool, into, start, to, ask, used, deps, stop);
      }));
      from = to;
    }
    await Promise.all(round);
  }
}

/** Spool lane `i`, from `start` to `end` (exclusive), filled from holders from where it stopped, `first` asked first. */
async function restInto(
  spool: Spool, i: number, start: number, end: number, first: string[], used: Set<string>, deps: LaneDeps, stop: AbortSignal, only?: Only,
): Promise<void> {
  const at = () => start + spool.laneReceived(i);
  for await (const chunk of deps.rest(at, end - 1, used, first, only)) {
    stop.throwIfAborted();
    await spool.append(chunk, i);
  }
  if (at() !== end) throw new Error(`holders sent ${at() - start} of the ${end - start} bytes at ${start} of ${spool.digest}`);
}
