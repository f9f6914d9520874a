// A blob taken in lanes: byte ranges covering it, each from a feeder already sending it (replication's
// stripes, see src/node/replication-plan.ts), all at once into one spool. A lane whose feeder breaks off or
// sends nothing is finished from other holders, from where it stopped, its stand-ins first (several at once
// when the plan says so, in chunks taken in order); in the endgame, its end comes from holders that have the
// blob whole meanwhile. The whole is verified as usual.
import type { Logger } from 'pino';
import type { BlobSource } from './blob-sequence.js';
import type { Spool } from './spool.js';
import { guarded, type LaneSpool } from './lane-spool.js';
import { unlessAborted } from '../util/unless-aborted.js';
import { AWAIT_WHOLE_MS } from './peer-protocol.js';

/** One range of a blob and where its bytes come from, once that feeder's stream reaches it. */
export interface Lane {
  offset: number;
  length: number;
  source: Promise<BlobSource | undefined>;
  /** Who to ask first for what the feeder does not send (replication-plan.ts, standInsOf). */
  standIns?: StandIns;
  endgame?: Endgame;
  /** Called once the lane's bytes are all here. */
  filled?(): void;
}

/**
 * A lane's endgame: once its taker holds every other stripe (`ready`), its download is free for this one, and
 * whoever finished has upload to spare. While ENDGAME_MIN_BYTES or more of the lane are left, the back half of
 * what is left is asked of `helpers` (replication-plan.ts, helpersOf), each sending only once it holds the blob
 * whole, then half of what is left again; the feeder goes on from the front until it meets them. Less is left
 * to the feeder unless it is too slow to bring it soon (FEEDER_FINISH_MS).
 */
export interface Endgame {
  ready: Promise<void>;
  helpers: string[];
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
  /** With shares: a holder of the whole stripe, asked for every chunk instead once the taker is in the endgame (Endgame). */
  whole?: string;
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

/** Least a lane has left for its endgame to ask helpers for half of it (see Endgame): less is not worth a request... */
export const ENDGAME_MIN_BYTES = 2 * CHUNK_BYTES;
/** ... unless its feeder, at its pace over PACE_WATCH_MS, would take longer than this for it (it may have none to send). */
export const FEEDER_FINISH_MS = 1000;
const PACE_WATCH_MS = 250;

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
  /** Only from a holder of the whole blob (WHOLE_HEADER). */
  whole?: boolean;
}

export interface LaneDeps {
  /** Feeders' bytes go through this node's bandwidth limit. */
  limited(bytes: AsyncIterable<Uint8Array>): AsyncIterable<Uint8Array>;
  rest: RangeSource;
  log: Logger;
}

/** What every filler of one blob's lanes shares. */
interface Filling {
  spool: LaneSpool;
  used: Set<string>;
  deps: LaneDeps;
  /** Once one lane fails, the others stop too: the spool starts over, and no lane may use it after that. */
  stop: AbortSignal;
}

/** What the filler of a lane and its endgame share. */
interface LaneState {
  /** The taker holds every other stripe (Endgame.ready). */
  late: boolean;
  /** Aborted once the endgame took all that the lane's feeder had left: its next bytes (or its piece) are not waited for. */
  freed: AbortController;
}

/** Fills the spool from the lanes; the peers that sent bytes end up in `used`. Throws when a lane could not be finished. */
export async function fillLanes(spool: Spool, blob: LanedBlob, used: Set<string>, deps: LaneDeps): Promise<void> {
  spool.setSize(blob.size, true);
  spool.useLanes(blob.lanes.map((l) => [l.offset, l.length]));
  const stop = new AbortController();
  const f: Filling = { spool: guarded(spool, stop.signal), used, deps, stop: stop.signal };
  const results = await Promise.allSettled(blob.lanes.map(async (lane, i) => {
    try {
      const state: LaneState = { late: false, freed: new AbortController() };
      const main = fillLane(f, i, lane, state);
      await Promise.all([main, lane.endgame && endgame(f, i, lane, lane.endgame, main, state)]);
      lane.filled?.();
    } catch (err) {
      stop.abort(err);
      throw err;
    }
  }));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  await spool.flush();
}

/** The lane's bytes from its feeder, and what it does not send from the stand-ins, up to where the endgame took the rest. */
async function fillLane(f: Filling, i: number, lane: Lane, state: LaneState): Promise<void> {
  const { spool, deps, stop } = f;
  const freed = state.freed.signal;
  const source = await unlessAborted(lane.source, freed);
  if (source) {
    f.used.add(source.peer);
    const chunks = deps.limited(source.bytes)[Symbol.asyncIterator]();
    try {
      for (let next; (next = await unlessAborted(chunks.next(), freed)) && !next.done; ) {
        if (!(await put(spool, i, next.value))) break;
      }
    } catch (err) {
      stop.throwIfAborted();
      deps.log.warn({ digest: spool.digest, peer: source.peer, offset: lane.offset + spool.laneReceived(i), err: (err as Error).message },
        'a feeder broke off; asking holders for the rest of its stripe');
    } finally {
      // Freed, the read under way ends the piece once it comes back (the sequence then goes on to its next piece).
      void chunks.return?.().catch(() => undefined);
    }
  }
  if (left(spool, i) === 0) return;
  const { ask, atOnce, byChunk, whole } = lane.standIns ?? { ask: [], atOnce: 1 };
  if (byChunk) return inShares(f, i, lane, byChunk, ask, () => (state.late ? whole : undefined));
  if (atOnce > 1 || ask.length === 0) return fromSeveral(f, i, ask, atOnce);
  // The first stand-in alone; once it fails (or does not answer: a dead host), the rest from the next ones at once.
  try {
    return await restInto(f, i, ask.slice(0, 1), { answerWithinMs: STAND_IN_ANSWER_MS });
  } catch (err) {
    stop.throwIfAborted();
    deps.log.warn({ digest: spool.digest, peer: ask[0], offset: lane.offset + spool.laneReceived(i), err: (err as Error).message },
      'a stand-in did not send the rest of a stripe; asking the next ones at once');
  }
  return fromSeveral(f, i, ask.slice(1), AFTER_A_STAND_IN);
}

/**
 * The endgame of a lane (see Endgame): from `ready` until the lane is filled, the back half of what the feeder
 * has left, from a helper holding the blob whole, into a lane of the spool of its own, split off only once the
 * bytes come and while the feeder has not reached them; what a helper began and did not send comes from holders.
 */
async function endgame(f: Filling, i: number, lane: Lane, { ready, helpers }: Endgame, main: Promise<void>, state: LaneState): Promise<void> {
  const { spool, deps, stop } = f;
  let filled = false;
  const done = main.then(() => (filled = true), () => (filled = true));
  await Promise.race([ready.then(() => (state.late = true)), done]);
  const answerWithinMs = AWAIT_WHOLE_MS + STAND_IN_ANSWER_MS;
  // Each round takes the lane's end down to `edge`: done once that is where the feeder (or a stand-in) is.
  for (let edge = lane.offset + lane.length; !filled && helpers.length > 0 && edge > lane.offset; ) {
    const front = spool.laneAt(edge - 1);
    const reached = () => spool.laneRange(front).start + spool.laneReceived(front);
    if (reached() >= edge) return;
    let cut = edge - Math.floor((edge - reached()) / 2);
    if (edge - reached() < ENDGAME_MIN_BYTES) {
      if (await feederFinishes(reached, edge, done)) continue;
      cut = reached();
    }
    let into: number | undefined;
    const at = () => cut + (into === undefined ? 0 : spool.laneReceived(into));
    const bytes = deps.rest(at, edge - 1, f.used, helpers, { whole: true, answerWithinMs })[Symbol.asyncIterator]();
    try {
      // A helper answers once it holds the blob whole, which may be after the feeder has brought the lane.
      const first = await Promise.race([bytes.next(), done.then(() => undefined)]);
      if (!first || first.done) return;
      const under = spool.laneAt(cut);
      if (cut < spool.laneRange(under).start + spool.laneReceived(under)) continue; // the feeder got there first
      into = spool.splitLane(under, cut);
      if (under === i && left(spool, i) === 0) state.freed.abort();
      for (let next: IteratorResult<Uint8Array> = first; !next.done; next = await bytes.next()) {
        if (!(await put(spool, into, next.value))) break;
      }
    } catch (err) {
      stop.throwIfAborted();
      deps.log.info({ digest: spool.digest, helpers, offset: at(), err: (err as Error).message }, 'no helper sent the end of a late stripe');
      if (into === undefined) return;
    } finally {
      void bytes.return?.(undefined).catch(() => undefined);
    }
    if (left(spool, into) > 0) await restInto(f, into, lane.standIns?.ask ?? []);
    edge = cut;
  }
}

/** The rest of lane `i` from `wanted` of `ask` at once (at most all of them), chunk after chunk in order, each in a lane of the spool of its own. */
async function fromSeveral(f: Filling, i: number, ask: string[], wanted: number): Promise<void> {
  const { spool } = f;
  const atOnce = Math.min(wanted, ask.length);
  if (atOnce <= 1) return restInto(f, i, ask);
  let tail = i;
  let next = spool.laneRange(i).start + spool.laneReceived(i);
  const end = () => spool.laneRange(tail).end;
  await Promise.all(Array.from({ length: atOnce }, async (_, w) => {
    const first = [...ask.slice(w), ...ask.slice(0, w)];
    while (next < end()) {
      const into = tail;
      next = Math.min(end(), next + CHUNK_BYTES);
      if (next < end()) tail = spool.splitLane(tail, next);
      await restInto(f, into, first);
    }
  }));
}

/**
 * The rest of lane `i` in shares (StandIns.byChunk): CHUNK_BYTES chunks on a grid from the lane's start, the
 * same on every node taking these shares, chunk n from `byChunk[n % byChunk.length]` (then `ask`, then any
 * holder), a round of one chunk per share at a time. A share's source that failed once is passed over after.
 * In the endgame every chunk is asked first of the holder of the whole stripe, when the plan names one (`whole()`).
 */
async function inShares(f: Filling, i: number, lane: Lane, byChunk: string[], ask: string[], whole: () => string | undefined): Promise<void> {
  const { spool, deps, stop } = f;
  const failed = new Set<string>();
  let tail = i;
  let from = lane.offset + spool.laneReceived(i);
  const end = () => spool.laneRange(tail).end;
  for (let n = Math.floor((from - lane.offset) / CHUNK_BYTES); from < end(); ) {
    const round: Promise<void>[] = [];
    for (let r = 0; r < byChunk.length && from < end(); r++, n++) {
      const to = Math.min(end(), lane.offset + (n + 1) * CHUNK_BYTES);
      const into = tail;
      if (to < end()) tail = spool.splitLane(tail, to);
      const source = byChunk[n % byChunk.length];
      const fromShare = () => (failed.has(source) ? Promise.reject(new Error('failed before')) : restInto(f, into, [source], {}));
      const holder = whole();
      const first = holder ? restInto(f, into, [holder], {}).catch(fromShare) : fromShare();
      round.push(first.catch((err: Error) => {
        stop.throwIfAborted();
        if (!failed.has(source)) deps.log.warn({ digest: spool.digest, peer: source, err: err.message }, 'a share of a stripe did not come; its chunks from the stand-ins');
        failed.add(source);
        return restInto(f, into, ask);
      }));
      from = to;
    }
    await Promise.all(round);
  }
}

/** Whether a feeder that has `reached()` brings the bytes up to `edge` soon, at its pace over the next PACE_WATCH_MS. */
async function feederFinishes(reached: () => number, edge: number, done: Promise<unknown>): Promise<boolean> {
  const before = reached();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([new Promise((resolve) => (timer = setTimeout(resolve, PACE_WATCH_MS))), done]);
  clearTimeout(timer);
  return edge - reached() <= ((reached() - before) / PACE_WATCH_MS) * FEEDER_FINISH_MS;
}

/** Bytes lane `i` still lacks, up to its end (which a split may have moved). */
function left(spool: LaneSpool, i: number): number {
  const { start, end } = spool.laneRange(i);
  return end - start - spool.laneReceived(i);
}

/** Appends as much of `chunk` as lane `i` still takes; false once it is full (the endgame may have taken its end). */
async function put(spool: LaneSpool, i: number, chunk: Uint8Array): Promise<boolean> {
  return (await spool.appendWithin(chunk, i)) === chunk.length && left(spool, i) > 0;
}

/** Spool lane `i`, up to its end, filled from holders from where it stopped, `first` asked first. */
async function restInto(f: Filling, i: number, first: string[], only?: Only): Promise<void> {
  const { spool, deps } = f;
  const { start } = spool.laneRange(i);
  const at = () => start + spool.laneReceived(i);
  if (left(spool, i) === 0) return;
  for await (const chunk of deps.rest(at, spool.laneRange(i).end - 1, f.used, first, only)) {
    if (!(await put(spool, i, chunk))) break;
  }
  if (left(spool, i) > 0) throw new Error(`holders sent ${at() - start} of the ${spool.laneRange(i).end - start} bytes at ${start} of ${spool.digest}`);
}
