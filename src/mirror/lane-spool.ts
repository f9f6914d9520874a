// The spool of a blob taken in lanes (lanes.ts), as those lanes may use it.
import { Spool } from './spool.js';

/** The spool as its lanes use it. */
export type LaneSpool = Pick<Spool, 'digest' | 'laneAt' | 'laneRange' | 'laneReceived' | 'splitLane' | 'appendWithin'>;

/**
 * `spool` for lanes that stop once `stop` aborts: any use then throws, so that no lane still running (a stand-in
 * whose feeder's piece came late, say) writes into, splits or asks holders by the spool the mirror started over.
 */
export function guarded(spool: Spool, stop: AbortSignal): LaneSpool {
  const live = <A extends unknown[], R>(op: (...args: A) => R) => (...args: A): R => {
    stop.throwIfAborted();
    return op.apply(spool, args);
  };
  const { laneAt, laneRange, laneReceived, splitLane, appendWithin } = Spool.prototype;
  return {
    digest: spool.digest,
    laneAt: live(laneAt), laneRange: live(laneRange), laneReceived: live(laneReceived), splitLane: live(splitLane), appendWithin: live(appendWithin),
  };
}
