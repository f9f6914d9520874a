import { describe, expect, test } from 'vitest';
import { digestOf } from '../oci/digest.js';
import { feedersOf, piecesOf, planFor, standInsOf, stripesFor, takerOrder } from './replication-plan.js';

const ORIGIN = 'pushed-to';
const ids = (n: number) => Array.from({ length: n }, (_, i) => `peer-${i}`);
const IMAGE = digestOf(Buffer.from('an image'));

/** Every taker's feeder per stripe, as each computes it for itself. */
function trees(n: number) {
  const order = takerOrder(IMAGE, ids(n));
  return { order, feeders: new Map(order.map((id) => [id, feedersOf(order, ORIGIN, id)])) };
}

/** Hops from the node pushed to down to `id` in stripe `s`; throws on a cycle. */
function depth(feeders: Map<string, string[]>, id: string, s: number): number {
  let hops = 0;
  for (let at = id; at !== ORIGIN; at = feeders.get(at)![s]) {
    if (++hops > feeders.size) throw new Error(`stripe ${s} loops at ${id}`);
  }
  return hops;
}

describe('replication plan', () => {
  test.each([1, 2, 3, 8, 9, 13, 100, 1000])('%i takers: every stripe is a tree from the node pushed to, of depth about log_k N (a pipeline for a few)', (n) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    let deepest = 0;
    for (const id of order) for (let s = 0; s < k; s++) deepest = Math.max(deepest, depth(feeders, id, s));
    expect(deepest).toBeLessThanOrEqual(k === 1 ? n : Math.ceil(Math.log(n) / Math.log(k) + 1e-9) + 1);
    if (n >= 100) expect(deepest).toBeLessThan(n / 10);
  });

  test.each([2, 8, 13, 100, 1000])('%i takers: each node sends about one copy, the node pushed to included', (n) => {
    const { feeders } = trees(n);
    const k = stripesFor(n);
    // Stripes sent by each node (each stripe is 1/k of the image).
    const sent = new Map<string, number>();
    for (const list of feeders.values()) for (const from of list) sent.set(from, (sent.get(from) ?? 0) + 1);
    expect(sent.get(ORIGIN)).toBe(k);
    expect(Math.max(...sent.values())).toBeLessThanOrEqual(k);
    // And forwards in one tree only.
    for (const id of feeders.keys()) {
      const trees = new Set([...feeders.values()].flatMap((list) => list.flatMap((from, s) => (from === id ? [s] : []))));
      expect(trees.size).toBeLessThanOrEqual(1);
    }
  });

  test('one stripe for a few takers, else a count that splits them evenly', () => {
    expect([1, 2, 8, 9, 10, 11, 14, 999, 1000].map(stripesFor)).toEqual([1, 1, 1, 4, 5, 5, 2, 3, 4]);
  });

  test('the stripes carry every byte of every blob exactly once, small blobs whole', () => {
    const blobs = [12 << 20, 1000, 300 << 10, 5 << 20, 2000].map((size, i) => ({ mediaType: 'x', digest: digestOf(Buffer.from([i])), size }));
    const stripes = piecesOf(blobs, 4);
    for (const blob of blobs) {
      const pieces = stripes.flat().filter((p) => p.digest === blob.digest).sort((a, b) => a.offset - b.offset);
      let end = 0;
      for (const p of pieces) {
        expect(p.offset).toBe(end);
        end += p.length;
      }
      expect(end).toBe(blob.size);
      if (blob.size < 512 << 10) expect(pieces).toHaveLength(1);
    }
    // The two small blobs go to different stripes; large ones are spread over all four.
    expect(new Set(stripes.map((s) => s.length)).size).toBeGreaterThan(1);
    expect(stripes.every((s) => s.some((p) => p.digest === blobs[0].digest))).toBe(true);
  });

  // Before stand-ins, every orphan asked the node pushed to (and whom it redirected to): k+1 streams or more every time.
  test.each([[100, 0.25], [1000, 0.05]])('%i takers: the orphans of a dead feeder take the places its death freed, so nobody sends more than before', (n, unlucky) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    // Streams each node sends; the dead one's k feeders each send one less.
    const sending = new Map<string, number>();
    for (const list of feeders.values()) for (const from of list) sending.set(from, (sending.get(from) ?? 0) + 1);
    let deaths = 0, spread = 0;
    for (const dead of order) {
      const orphans = [...feeders].filter(([, list]) => list.includes(dead));
      if (orphans.length === 0) continue;
      deaths++;
      const load = new Map(sending);
      for (const from of feeders.get(dead)!) load.set(from, load.get(from)! - 1);
      let placeless = false;
      for (const [id, list] of orphans) {
        const s = list.indexOf(dead);
        const { ask, atOnce } = standInsOf(order, ORIGIN, id, s);
        // Never itself, nor a node that takes stripe s through the dead one: that node waits for the same bytes.
        expect(ask).not.toContain(id);
        for (const standIn of ask) for (let at = standIn; at !== ORIGIN; at = feeders.get(at)![s]) expect(at).not.toBe(dead);
        // One that finds no freed place of its own takes its rest from several at once, each sending a share.
        if (atOnce > 1) placeless = true;
        else load.set(ask[0] ?? ORIGIN, (load.get(ask[0] ?? ORIGIN) ?? 0) + 1);
      }
      if (placeless) spread++;
      // A dead root's orphans have only the node pushed to.
      if (feeders.get(dead)!.includes(ORIGIN)) continue;
      expect(Math.max(...load.values())).toBeLessThanOrEqual(k);
    }
    expect(deaths).toBeGreaterThan(n / k - 2);
    // A freed place is of no use where it is an orphan itself or below the dead node: more often in shallow trees.
    expect(spread / deaths).toBeLessThan(unlucky);
  });

  test('in a pipeline, the node after a dead one takes the rest from the node before it', () => {
    const order = takerOrder(IMAGE, ids(6));
    expect(standInsOf(order, ORIGIN, order[3], 0)).toEqual({ ask: [order[1], order[0]], atOnce: 1 });
    expect(standInsOf(order, ORIGIN, order[0], 0).ask).toEqual([]);
  });

  test('a taker missing from the takers it knows still gets a feeder per stripe', () => {
    const plan = planFor(IMAGE, [], ORIGIN, ids(12), 'late-joiner');
    expect(plan.feeders).toHaveLength(stripesFor(13));
    expect(plan.feeders.every((f) => f !== 'late-joiner')).toBe(true);
  });
});
