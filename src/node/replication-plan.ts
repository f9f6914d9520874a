// Who sends what to whom when an image is replicated, computed alike by every taker from the push's digest,
// the node pushed to and the takers it knows: no coordinator. Each layer is cut into k stripes (byte
// ranges; a small blob is one stripe whole) and every stripe travels its own k-ary tree of the takers,
// SplitStream-like: a taker forwards in one stripe's tree only (it is interior there and a leaf in the
// others), so each node, the one pushed to included, sends about one copy of the image, and the last
// taker is about log_k N hops from the source instead of N along a single pipeline (which is what a few
// takers get: one stripe).
//
// Views that differ (a taker another does not know) shift positions in the orders; a taker asked for a
// stripe it does not forward still serves what it receives, and a feeder that sends nothing is replaced by
// its stand-ins (standInsOf), then the node pushed to, so a plan made from a partial view still works, only
// less evenly.
import { createHash } from 'node:crypto';
import type { Descriptor } from '../oci/digest.js';
import type { StandIns } from '../mirror/lanes.js';
import type { Piece, SequenceLevel } from '../mirror/peer-protocol.js';

/**
 * What one taker does: per stripe, the node it takes that stripe from, who stands in for it, whom it asks for
 * the stripe's last bytes in the endgame, and the pieces the stripe carries.
 */
export interface TakerPlan {
  feeders: string[];
  standIns: StandIns[];
  helpers: string[][];
  pieces: Piece[][];
}

/** Stand-ins asked at once when no freed place is left for an orphan: each sends a share, none a whole extra stream. */
const SPREAD = 2;
/** Takers a late stripe asks for its last bytes in the endgame (helpersOf). */
const HELPERS = 3;

/**
 * Stripes beyond PIPELINE_MAX_TAKERS, and the trees' fan-out: the same for every fleet size, so that nodes whose
 * views differ by a few takers still cut the same stripes. treeOf's spare places hold for 4.
 */
const STRIPES = 4;
/**
 * Up to this many takers, one stripe: the trees are then a single pipeline through the takers in order.
 * Stripes cost each node k streams in and out, about a quarter more CPU per byte on the fleet bench, and
 * a pipeline this short is within a few percent of them (docs/replication.md).
 */
const PIPELINE_MAX_TAKERS = 8;
/** Stripes of a blob are at least this long; a smaller blob goes whole in one stripe. */
export const MIN_STRIPE_BYTES = 256 << 10;

/** The stripe count for `takers` nodes: one for a few, else STRIPES. */
export function stripesFor(takers: number): number {
  return takers <= PIPELINE_MAX_TAKERS ? 1 : STRIPES;
}

/**
 * A short name of a taker for the push's gossip (MeshEvent.takers): 48 bits of a hash of its peer id, so that
 * the order of a thousand takers fits in one event.
 */
export function takerTag(id: string): string {
  return createHash('sha256').update(id).digest('base64url').slice(0, 8);
}

/** The order `tags` name, each the member in `members` that has that tag, or the tag itself for one not known here. */
export function orderOfTags(tags: string[], members: string[]): string[] {
  const byTag = new Map(members.map((id) => [takerTag(id), id]));
  return tags.map((tag) => byTag.get(tag) ?? tag);
}

/** The takers in the order of this image: a hash of digest and peer id, different for every image. */
export function takerOrder(digest: string, takers: string[]): string[] {
  const rank = (id: string) => createHash('sha256').update(`${digest}\n${id}`).digest('hex');
  return [...new Set(takers)].map((id) => ({ id, rank: rank(id) })).sort((a, b) => (a.rank < b.rank ? -1 : 1)).map((t) => t.id);
}

/**
 * Stripe s's tree as a k-ary heap: the takers of group s (every k-th of the order, from s), then all the others.
 * Its interior takes ceil((n − 1) / k) nodes. With r = n mod k ≥ 2, groups r… are one short: their last
 * interior place, with r − 1 children, goes to the last node of a full group, which has as many children in
 * its own tree and room for k − r + 1 more (r − 1 ≤ k − r + 1 for k = 4): its upload stays within one copy.
 */
function treeOf(order: string[], k: number, s: number): string[] {
  const r = order.length % k;
  const spare = r >= 2 && s >= r ? order[order.length - r + ((s - r) % r)] : undefined;
  return [...order.filter((_, i) => i % k === s), ...(spare ? [spare] : []), ...order.filter((id, i) => i % k !== s && id !== spare)];
}

/** Where the node at `at` of a k-ary heap takes its bytes from. */
const parentIn = (k: number, at: number) => Math.floor((at - 1) / k);

/**
 * Where a node not in the order (the node pushed to did not know it) takes stripe s, best first: in a pipeline,
 * the tail (whose upload is free), then the nodes before it; in stripes, nodes of the later half of the order
 * picked by a hash, which are at the bottom of their own trees, where one stream more slows a few leaves.
 * Taking it from `pushedTo` would slow every tree's root.
 */
function outsiderFeeders(order: string[], k: number, self: string, s: number): string[] {
  const half = Math.ceil(order.length / 2);
  const at = (i: number) => (k === 1 ? i : createHash('sha256').update(`${self}\n${s}\n${i}`).digest().readUInt32BE(0) % half);
  return [...new Set([0, 1, 2].map((i) => order.at(-1 - at(i))))].filter((id) => id !== undefined);
}

/**
 * For each stripe, the node `self` takes it from. Stripe s's tree is a k-ary heap over the takers of
 * group s followed by all the others; its root takes it from `pushedTo`. A node not in the order: outsiderFeeders.
 */
export function feedersOf(order: string[], pushedTo: string, self: string): string[] {
  const k = stripesFor(order.length);
  const at = order.indexOf(self);
  if (at < 0) return Array.from({ length: k }, (_, s) => outsiderFeeders(order, k, self, s)[0] ?? pushedTo);
  return Array.from({ length: k }, (_, s) => {
    const tree = treeOf(order, k, s);
    const position = tree.indexOf(self);
    return position === 0 ? pushedTo : tree[parentIn(k, position)];
  });
}

/**
 * Whom `self` asks for the rest of stripe `s` when its feeder there stops sending, best first; the node
 * pushed to comes after these. Every node's upload is full (k children of one stripe), but a feeder that
 * dies frees one place in the upload of each of its own feeders, one per stripe: its i-th child in stripe
 * s takes the place its feeder of stripe s+i gave it, so that k orphans find k free places and nobody's
 * children slow down (a holder chosen otherwise sends k+1 streams, and its whole subtree is late). The
 * other places follow in case that one is gone too, then the dead feeder's own ancestors; nodes below it
 * in stripe s are left out, as they wait for the same bytes. When its own place is of no use (the orphan
 * itself, or below the dead one), whoever it asks sends one stream more than its share: the rest is then
 * taken from SPREAD stand-ins at once, so that each sends part of a stream and its children slow less.
 */
export function standInsOf(order: string[], pushedTo: string, self: string, s: number): StandIns {
  const k = stripesFor(order.length);
  const tree = treeOf(order, k, s);
  const position = tree.indexOf(self);
  if (position < 0) return { ask: outsiderFeeders(order, k, self, s).slice(1), atOnce: 1 };
  if (position === 0) return { ask: [], atOnce: 1 };
  const parent = (at: number) => parentIn(k, at);
  const dead = parent(position);
  const below = (id: string) => {
    for (let at = tree.indexOf(id); at > dead; at = parent(at)) if (parent(at) === dead) return true;
    return false;
  };
  const places = feedersOf(order, pushedTo, tree[dead]);
  // A place is of use when it holds stripe s as far as anyone: not below the dead node, and the node pushed
  // to only when the dead node was a root (its stripe's only other holder then).
  const useful = (id: string) => (id !== pushedTo || dead === 0) && !below(id);
  const child = (position - 1) % k;
  const ancestors: string[] = [];
  for (let at = dead; at > 0; ) ancestors.push(tree[(at = parent(at))]);
  const candidates = [...places.map((_, i) => places[(s + child + i) % k]), ...ancestors];
  const ask = [...new Set(candidates)].filter((id) => id !== pushedTo && id !== self && !below(id));
  const orphans = tree.slice(dead * k + 1, dead * k + k + 1);
  const placeless = orphans.filter((_, c) => !useful(places[(s + c) % k])).length;
  if (orphans.length > 1 && (placeless > 1 || (placeless > 0 && dead === 0))) {
    // Fewer useful places than orphans (a dead root has one: the node pushed to). Together they carry one
    // stream: each orphan takes a share of the rest from one of them, chunk by chunk in turn, and the other
    // shares from its fellow orphans, each sending its own share to the others ((k−1)/k² of the image more).
    // A dead root's only useful place is the node pushed to, which holds the stripe whole: once its other
    // trees' roots hold their stripes its upload is free, and in the endgame every share comes from it.
    const free = places.filter(useful);
    const byChunk = orphans.map((id, c) => (id === self ? free[c % free.length] : id));
    return { ask, atOnce: 1, byChunk, ...(dead === 0 ? { whole: pushedTo } : {}) };
  }
  return { ask, atOnce: ask[0] === places[(s + child) % k] ? 1 : SPREAD };
}

/**
 * Whom `self` asks, best first, for the last bytes of stripe s once it holds every other stripe (the endgame,
 * mirror/lanes.ts): holders that have finished, whose upload is free. Which ones finish first is not known
 * here: a few takers picked by a hash of `self` and s, so that the late nodes of a subtree ask different ones.
 * None is late with `self` for sure: its feeder in stripe s, or a node that takes stripe s through that feeder
 * (through `self` when the feeder is the root, below which all are), waits for the same bytes. Each helper
 * sends once it holds the blob whole.
 */
export function helpersOf(order: string[], self: string, s: number): string[] {
  const k = stripesFor(order.length);
  const tree = treeOf(order, k, s);
  const position = tree.indexOf(self);
  const parent = (at: number) => parentIn(k, at);
  const top = position > k ? parent(position) : position;
  const late = (at: number) => {
    if (at === parent(position)) return true;
    while (at > top) at = parent(at);
    return at === top;
  };
  const helpers: string[] = [];
  for (let round = 0; round < 4 && helpers.length < HELPERS; round++) {
    const picks = createHash('sha256').update(`${self}\n${s}\n${round}`).digest();
    for (let i = 0; i < picks.length && helpers.length < HELPERS; i += 4) {
      const at = picks.readUInt32BE(i) % tree.length;
      if (!late(at) && !helpers.includes(tree[at])) helpers.push(tree[at]);
    }
  }
  return helpers;
}

/** The pieces each of `k` stripes carries, blob after blob in the given order. */
export function piecesOf(blobs: Descriptor[], k: number): Piece[][] {
  const stripes: Piece[][] = Array.from({ length: k }, () => []);
  let small = 0;
  for (const { digest, size } of blobs) {
    const cuts = Math.min(k, Math.floor(size / MIN_STRIPE_BYTES));
    if (cuts <= 1) {
      // Whole, in turn over the stripes, so that many small blobs do not all load one tree.
      stripes[small++ % k].push({ digest, size, offset: 0, length: size });
      continue;
    }
    for (let s = 0; s < cuts; s++) {
      const offset = Math.floor((size * s) / cuts);
      stripes[s].push({ digest, size, offset, length: Math.floor((size * (s + 1)) / cuts) - offset });
    }
  }
  return stripes;
}

/**
 * How a tree's root levels its sequence of stripe `s` (`taking`: the pieces of it it lacks) with the other roots'
 * at the node pushed to (mirror/level-sends.ts): in the group of the push's manifest `push`, on lane s, waiting
 * for as many lanes as stripes carry a piece of the largest cut blob it takes (the other roots, lacking what it
 * lacks, ask for theirs at the same time). None when it takes no cut blob: then there is nothing to keep level.
 */
export function levelOf(push: string, stripes: Piece[][], taking: Piece[], s: number): SequenceLevel | undefined {
  const cut = taking.filter((p) => p.length < p.size);
  if (cut.length === 0) return undefined;
  const largest = cut.reduce((a, b) => (b.size > a.size ? b : a)).digest;
  return { key: push, lane: s, lanes: stripes.filter((pieces) => pieces.some((p) => p.digest === largest)).length };
}

/**
 * `self`'s part in replicating `blobs` from `pushedTo` to the takers in `order` (takerOrder). A node not in the
 * order (the node pushed to did not know it) takes its stripes from the bottom of the trees (outsiderFeeders).
 */
export function planFor(order: string[], blobs: Descriptor[], pushedTo: string, self: string): TakerPlan {
  const feeders = feedersOf(order, pushedTo, self);
  return {
    feeders,
    standIns: feeders.map((_, s) => standInsOf(order, pushedTo, self, s)),
    helpers: feeders.map((_, s) => helpersOf(order, self, s)),
    pieces: piecesOf(blobs, feeders.length),
  };
}
