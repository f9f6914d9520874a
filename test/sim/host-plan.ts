// The plan meshd computes (src/node/replication-plan.ts, imported, not copied), in the simulation's host
// numbers: host 0 is the node pushed to, hosts 1..N−1 take.
import type { Descriptor } from '../../src/oci/digest.js';
import { feedersOf, helpersOf, orderOfTags, piecesOf, standInsOf, takerOrder, takerTag } from '../../src/node/replication-plan.js';

const PUSHED_TO = 'pushed-to';

/** Views that differ: the node pushed to and every taker each know all takers but a random `missingPct` of them. */
export interface Views {
  missingPct: number;
  rand: () => number;
}

/**
 * Per taker (1..N−1) and stripe, the host it takes that stripe from (−1: one it does not know, so it asks its
 * stand-ins at once), and whom it asks instead when that feeder stops (the node pushed to last); and each
 * stripe's length. With `views`, every taker plans on the order the node pushed to sent (push-follower.ts).
 */
export function hostPlan(nodes: number, blobs: Descriptor[], image: string, plan: 'stripes' | 'chain', views?: Views) {
  const ids = Array.from({ length: nodes }, (_, h) => (h === 0 ? PUSHED_TO : `taker-${h}`));
  const host = new Map(ids.map((id, h) => [id, h]));
  const known = (self: string) => ids.slice(1).filter((id) => id === self || !views || views.rand() >= views.missingPct / 100);
  const sent = takerOrder(image, known(PUSHED_TO));
  const tags = sent.map(takerTag);
  const orders = ids.map((id, h) => (h === 0 || !views ? sent : orderOfTags(tags, known(id))));
  const hosts = (list: string[]) => list.map((id) => host.get(id) ?? -1);
  const feeders: number[][] = ids.map(() => []);
  if (plan === 'chain') {
    sent.forEach((id, i) => (feeders[host.get(id)!] = [i === 0 ? 0 : host.get(sent[i - 1])!]));
  } else {
    for (let h = 1; h < nodes; h++) feeders[h] = hosts(feedersOf(orders[h], PUSHED_TO, ids[h]));
  }
  const k = feeders[1].length;
  const lengths = piecesOf(blobs, k).map((pieces) => pieces.reduce((n, p) => n + p.length, 0));
  const standIns = (h: number, s: number) => {
    const { ask, atOnce, byChunk, whole } = standInsOf(orders[h], PUSHED_TO, ids[h], s);
    // A share of one not known here comes from the node pushed to.
    return { list: [...hosts(ask).filter((x) => x >= 0), 0], atOnce, byChunk: byChunk && hosts(byChunk).map((x) => Math.max(x, 0)), whole: whole === undefined ? undefined : host.get(whole)! };
  };
  const helpers = (h: number, s: number) => hosts(helpersOf(orders[h], ids[h], s)).filter((x) => x >= 0);
  return { k, feeders, lengths, standIns, helpers };
}
