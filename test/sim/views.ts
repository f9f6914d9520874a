// How plans agree when members' views of the mesh differ: every taker, and the node pushed to, misses a random
// `missingPct` of the other takers, and computes its plan (src/node/replication-plan.ts, imported) either from
// its own view or from the order the node pushed to sent in the push's gossip (MeshEvent.takers). Counted over
// every taker's stripes: streams whose feeders lead back to the taker itself instead of to the node pushed to
// (they stall until a stand-in takes over), feeders the taker does not know (it asks a stand-in at once), and
// nodes asked for more streams than the k of one copy.
import { feedersOf, orderOfTags, takerOrder, takerTag } from '../../src/node/replication-plan.js';
import { digestOf } from '../../src/oci/digest.js';
import { mulberry32 } from '../fuzz/prng.js';

const PUSHED_TO = 'pushed-to';

export interface ViewsResult {
  nodes: number;
  missingPct: number;
  plannedBy: 'own view' | 'pushed-to';
  stripes: number;
  streams: number;
  inCycles: number;
  unknownFeeders: number;
  /** Takers asked for more than k streams, and the most any was asked for. */
  overloaded: number;
  maxStreams: number;
  /** Streams the node pushed to sends: k, plus k for each taker it did not know. */
  pushedToStreams: number;
}

export function planViews(nodes: number, missingPct: number, plannedBy: ViewsResult['plannedBy'], seed = 1): ViewsResult {
  const rand = mulberry32(seed);
  const ids = Array.from({ length: nodes - 1 }, (_, i) => `taker-${i}`);
  const digest = digestOf(Buffer.from(`image ${seed}`));
  const view = (self: string) => ids.filter((id) => id !== self && rand() >= missingPct / 100);
  const sent = takerOrder(digest, view(PUSHED_TO)).map(takerTag);
  const feeders = new Map(ids.map((id) => {
    const known = view(id);
    const order = plannedBy === 'pushed-to' ? orderOfTags(sent, [...known, id]) : takerOrder(digest, [...known, id]);
    return [id, feedersOf(order, PUSHED_TO, id)];
  }));
  const k = Math.max(...[...feeders.values()].map((f) => f.length));
  const asked = new Map<string, number>();
  let inCycles = 0, unknownFeeders = 0, streams = 0;
  for (const [id, list] of feeders) {
    list.forEach((from, s) => {
      streams++;
      if (from !== PUSHED_TO && !feeders.has(from)) unknownFeeders++;
      asked.set(from, (asked.get(from) ?? 0) + 1);
      const seen = new Set<string>();
      let at = id;
      while (at !== PUSHED_TO && !seen.has(at) && feeders.has(at)) (seen.add(at), (at = feeders.get(at)![s] ?? PUSHED_TO));
      if (seen.has(at)) inCycles++;
    });
  }
  const takersAsked = [...asked].filter(([id]) => id !== PUSHED_TO).map(([, n]) => n);
  return {
    nodes, missingPct, plannedBy, stripes: k, streams, inCycles, unknownFeeders,
    overloaded: takersAsked.filter((n) => n > k).length, maxStreams: Math.max(0, ...takersAsked), pushedToStreams: asked.get(PUSHED_TO) ?? 0,
  };
}
