// A blob taken in lanes: byte ranges covering it, each from a feeder already sending it (replication's
// stripes, see src/node/replication-plan.ts), all at once into one spool. A lane whose feeder breaks off or
// sends nothing is finished from other holders, from where it stopped, its stand-ins first; the whole is
// verified as usual.
import type { Logger } from 'pino';
import type { BlobSource } from './blob-sequence.js';
import type { Spool } from './spool.js';

/** One range of a blob and where its bytes come from, once that feeder's stream reaches it. */
export interface Lane {
  offset: number;
  length: number;
  source: Promise<BlobSource | undefined>;
  /** Who to ask first for what the feeder does not send (replication-plan.ts, standInsOf). */
  standIns?: string[];
}

export interface LanedBlob {
  size: number;
  lanes: Lane[];
}

/** The bytes from `at()` to `end` (inclusive) from other holders, `first` asked first, noting in `used` who sent them. */
export type RangeSource = (at: () => number, end: number, used: Set<string>, first: string[]) => AsyncIterable<Uint8Array>;

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
  const at = () => lane.offset + spool.laneReceived(i);
  for await (const chunk of deps.rest(at, lane.offset + lane.length - 1, used, lane.standIns ?? [])) {
    stop.throwIfAborted();
    await spool.append(chunk, i);
  }
  if (spool.laneReceived(i) !== lane.length) throw new Error(`holders sent ${spool.laneReceived(i)} of the ${lane.length} bytes at ${lane.offset} of ${spool.digest}`);
}
