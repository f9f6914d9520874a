// The plan meshd computes (src/node/replication-plan.ts, imported, not copied), in the simulation's host
// numbers: host 0 is the node pushed to, hosts 1..N−1 take.
import type { Descriptor } from '../../src/oci/digest.js';
import { feedersOf, helpersOf, piecesOf, standInsOf, takerOrder } from '../../src/node/replication-plan.js';

const PUSHED_TO = 'pushed-to';

/**
 * Per taker (1..N−1) and stripe, the host it takes that stripe from, and whom it asks instead when that
 * feeder stops (the node pushed to last); and each stripe's length.
 */
export function hostPlan(nodes: number, blobs: Descriptor[], image: string, plan: 'stripes' | 'chain') {
  const ids = Array.from({ length: nodes }, (_, h) => (h === 0 ? PUSHED_TO : `taker-${h}`));
  const host = new Map(ids.map((id, h) => [id, h]));
  const order = takerOrder(image, ids.slice(1));
  const feeders: number[][] = ids.map(() => []);
  if (plan === 'chain') {
    order.forEach((id, i) => (feeders[host.get(id)!] = [i === 0 ? 0 : host.get(order[i - 1])!]));
  } else {
    for (const id of order) feeders[host.get(id)!] = feedersOf(order, PUSHED_TO, id).map((f) => host.get(f)!);
  }
  const k = feeders[1].length;
  const lengths = piecesOf(blobs, k).map((pieces) => pieces.reduce((n, p) => n + p.length, 0));
  const standIns = (h: number, s: number) => {
    const { ask, atOnce, byChunk, whole } = standInsOf(order, PUSHED_TO, ids[h], s);
    return { list: [...ask.map((id) => host.get(id)!), 0], atOnce, byChunk: byChunk?.map((id) => host.get(id)!), whole: whole === undefined ? undefined : host.get(whole)! };
  };
  const helpers = (h: number, s: number) => helpersOf(order, ids[h], s).map((id) => host.get(id)!);
  return { k, feeders, lengths, standIns, helpers };
}

