import { describe, expect, test } from 'vitest';
import { digestOf } from '../oci/digest.js';
import { feedersOf, helpersOf, levelOf, piecesOf, planFor, standInsOf, stripesFor, takerOrder } from './replication-plan.js';

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
  test.each([1, 2, 3, 8, 9, 13, 14, 100, 999, 1000])('%i takers: every stripe is a tree from the node pushed to, of depth about log_k N (a pipeline for a few)', (n) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    let deepest = 0;
    for (const id of order) for (let s = 0; s < k; s++) deepest = Math.max(deepest, depth(feeders, id, s));
    expect(deepest).toBeLessThanOrEqual(k === 1 ? n : Math.ceil(Math.log(n) / Math.log(k) + 1e-9) + 1);
    if (n >= 100) expect(deepest).toBeLessThan(n / 10);
  });

  test.each([2, 8, 13, 14, 100, 999, 1000])('%i takers: each node sends about one copy, the node pushed to included', (n) => {
    const { feeders } = trees(n);
    const k = stripesFor(n);
    // Stripes sent by each node (each stripe is 1/k of the image).
    const sent = new Map<string, number>();
    for (const list of feeders.values()) for (const from of list) sent.set(from, (sent.get(from) ?? 0) + 1);
    expect(sent.get(ORIGIN)).toBe(k);
    expect(Math.max(...sent.values())).toBeLessThanOrEqual(k);
    // And forwards in one tree only, but for a full group's last node in each tree whose group is one short.
    const inTwo = [...feeders.keys()].filter((id) => {
      const trees = new Set([...feeders.values()].flatMap((list) => list.flatMap((from, s) => (from === id ? [s] : []))));
      expect(trees.size).toBeLessThanOrEqual(2);
      return trees.size === 2;
    });
    expect(inTwo.length).toBeLessThanOrEqual(n % k >= 2 ? k - (n % k) : 0);
  });

  test('one stripe for a few takers, else four for any count: views that differ by a few takers cut the same stripes', () => {
    expect([1, 2, 8, 9, 10, 11, 14, 999, 1000].map(stripesFor)).toEqual([1, 1, 1, 4, 4, 4, 4, 4, 4]);
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

  test('the trees\' roots level their sequences as one push, also when one holds the largest blob already', () => {
    const blobs = [12 << 20, 100 << 10, 8 << 20, 600 << 10].map((size, i) => ({ mediaType: 'x', digest: digestOf(Buffer.from([i])), size }));
    const stripes = piecesOf(blobs, 4);
    const levels = stripes.map((pieces, s) => levelOf(IMAGE, stripes, pieces, s));
    expect(levels).toEqual([0, 1, 2, 3].map((lane) => ({ key: IMAGE, lane, lanes: 4 })));
    // A root that holds the 12 MiB layer takes the rest of its stripe in the same group, waiting for the same lanes.
    const lacking = stripes[2].filter((p) => p.digest !== blobs[0].digest);
    expect(levelOf(IMAGE, stripes, lacking, 2)).toEqual({ key: IMAGE, lane: 2, lanes: 4 });
    // Taking only a blob cut in two, it waits for two lanes; taking nothing cut (a small layer changed), for none.
    const onlyHalves = stripes[1].filter((p) => p.digest === blobs[3].digest);
    expect(levelOf(IMAGE, stripes, onlyHalves, 1)).toEqual({ key: IMAGE, lane: 1, lanes: 2 });
    expect(levelOf(IMAGE, stripes, stripes[1].filter((p) => p.digest === blobs[1].digest), 1)).toBeUndefined();
  });

  // Before stand-ins, every orphan asked the node pushed to (and whom it redirected to): k+1 streams or more every
  // time; before shares, a dead root's k orphans all asked it (2k − 1 streams, every tree slowed).
  test.each([[100, 0.25], [1000, 0.05]])('%i takers: the orphans of a dead feeder take the places its death freed, so nobody sends more than before', (n, unlucky) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    // Streams each node sends; the dead one's k feeders each send one less.
    const sending = new Map<string, number>();
    for (const list of feeders.values()) for (const from of list) sending.set(from, (sending.get(from) ?? 0) + 1);
    let deaths = 0, placeless = 0;
    for (const dead of order) {
      const orphans = [...feeders].filter(([, list]) => list.includes(dead));
      if (orphans.length === 0) continue;
      deaths++;
      const load = new Map(sending);
      for (const from of feeders.get(dead)!) load.set(from, load.get(from)! - 1);
      const add = (id: string, streams: number) => load.set(id, (load.get(id) ?? 0) + streams);
      let shares = false, spread = 0;
      for (const [id, list] of orphans) {
        const s = list.indexOf(dead);
        const { ask, atOnce, byChunk } = standInsOf(order, ORIGIN, id, s);
        // Never itself, nor a node that takes stripe s through the dead one (that node waits for the same
        // bytes), but for its fellow orphans in shares, which each take their share elsewhere.
        expect(ask).not.toContain(id);
        expect(byChunk ?? []).not.toContain(id);
        const fellow = (x: string) => orphans.some(([o]) => o === x);
        for (const standIn of [...ask, ...(byChunk ?? []).filter((x) => !fellow(x))]) {
          for (let at = standIn; at !== ORIGIN; at = feeders.get(at)![s]) expect(at).not.toBe(dead);
        }
        if (byChunk) {
          // Every orphan of that death takes shares, of the same chunks, each its own from a freed place.
          shares = true;
          expect(byChunk).toHaveLength(orphans.length);
          for (const x of byChunk) add(x, 1 / byChunk.length);
        } else if (atOnce > 1) spread++;
        else add(ask[0] ?? ORIGIN, 1);
      }
      if (shares) expect(orphans.every(([id, list]) => standInsOf(order, ORIGIN, id, list.indexOf(dead)).byChunk)).toBe(true);
      if (shares || spread) placeless++;
      // Two or more without a place of their own take shares instead (a root's orphans always): several at once is for one alone.
      expect(spread).toBeLessThanOrEqual(1);
      // Nobody sends more than before, the node pushed to included, but orphans sending each other their shares.
      for (const [id, streams] of load) expect(streams).toBeLessThanOrEqual(orphans.some(([o]) => o === id) ? k + (k - 1) / k + 1e-9 : k + 1e-9);
    }
    expect(deaths).toBeGreaterThan(n / k - 2);
    // A freed place is of no use where it is an orphan itself or below the dead node: more often in shallow trees.
    expect(placeless / deaths).toBeLessThan(unlucky);
  });

  test.each([14, 100, 1000])('%i takers: a dead root\'s orphans take a share each from the node pushed to and the other shares from each other', (n) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    const root = order[0];
    const orphans = order.filter((id) => feedersOf(order, ORIGIN, id)[0] === root);
    expect(orphans).toHaveLength(k);
    // Every orphan cuts the same shares: its own from the node pushed to, each other one from the orphan whose share it is.
    const shares = orphans.map((id) => {
      const { byChunk } = standInsOf(order, ORIGIN, id, 0);
      expect(byChunk).not.toContain(id);
      return byChunk!.map((x) => (x === ORIGIN ? id : x));
    });
    for (const list of shares) expect(list).toEqual(shares[0]);
    expect([...shares[0]].sort()).toEqual([...orphans].sort());
    expect(feeders.get(root)![0]).toBe(ORIGIN);
  });

  test.each([100, 1000])('%i takers: in the endgame, only a dead root\'s orphans take every share from the node pushed to, which holds the stripe whole', (n) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    let roots = 0, others = 0;
    for (const [id, list] of feeders) {
      list.forEach((dead, s) => {
        if (dead === ORIGIN) return;
        const { byChunk, whole } = standInsOf(order, ORIGIN, id, s);
        const root = feeders.get(dead)![s] === ORIGIN;
        if (root) roots++;
        else if (byChunk) others++;
        expect(whole).toBe(root ? ORIGIN : undefined);
      });
    }
    expect(roots).toBe(k * k);
    expect(others).toBeGreaterThan(0);
  });

  test.each([6, 13, 100, 1000])('%i takers: endgame helpers are a few other takers, none late with the taker in its late stripe, picked differently by each', (n) => {
    const { order, feeders } = trees(n);
    const k = stripesFor(n);
    const picked = new Map<string, number>();
    for (const id of order) {
      for (let s = 0; s < k; s++) {
        const helpers = helpersOf(order, id, s);
        expect(helpers).toEqual(helpersOf(order, id, s));
        expect(new Set(helpers).size).toBe(helpers.length);
        // A root has all others below it.
        if (n >= 100) expect(helpers).toHaveLength(feeders.get(id)![s] === ORIGIN ? 0 : 3);
        const feeder = feeders.get(id)![s];
        // Below the taker's feeder, all wait for the same bytes as the taker; below the root, all nodes are.
        const late = feeder === ORIGIN || feeders.get(feeder)![s] === ORIGIN ? id : feeder;
        for (const helper of helpers) {
          picked.set(helper, (picked.get(helper) ?? 0) + 1);
          expect(helper).not.toBe(feeder);
          for (let at = helper; at !== ORIGIN; at = feeders.get(at)![s]) expect(at).not.toBe(late);
        }
      }
    }
    if (n >= 100) expect(Math.max(...picked.values())).toBeLessThan(6 * k * 3);
  });

  test('in a pipeline, the node after a dead one takes the rest from the node before it', () => {
    const order = takerOrder(IMAGE, ids(6));
    expect(standInsOf(order, ORIGIN, order[3], 0)).toEqual({ ask: [order[1], order[0]], atOnce: 1 });
    expect(standInsOf(order, ORIGIN, order[0], 0).ask).toEqual([]);
  });

  test.each([5, 12, 100, 1000])('%i takers: those the node pushed to did not know take the stripes from the bottom of the trees, a few streams more each', (n) => {
    const order = takerOrder(IMAGE, ids(n));
    const k = stripesFor(n);
    const { feeders: planned } = trees(n);
    const asked = new Map<string, number>();
    for (const list of planned.values()) for (const f of list) asked.set(f, (asked.get(f) ?? 0) + 1);
    const late = Array.from({ length: Math.ceil(n / 100) + 1 }, (_, i) => planFor(order, [], ORIGIN, `late-${i}`).feeders);
    for (const feeders of late) {
      expect(feeders).toHaveLength(k);
      for (const f of feeders) asked.set(f, (asked.get(f) ?? 0) + 1);
      if (k === 1) expect(feeders).toEqual([order.at(-1)]); // a pipeline's tail, which sends nothing else
      // Nodes whose children are leaves: in its tree, no node asks any of their children for that stripe.
      else feeders.forEach((f, s) => expect([...planned].filter(([, list]) => list[s] === f).every(([child]) => [...planned.values()].every((list) => list[s] !== child))).toBe(true));
    }
    expect(asked.get(ORIGIN)).toBe(k);
    expect(Math.max(...[...asked].filter(([id]) => id !== ORIGIN).map(([, n]) => n))).toBeLessThanOrEqual(k === 1 ? late.length : k + 2);
    // Should its feeder not answer (one it does not know), others of the same kind stand in before the node pushed to.
    const { ask } = standInsOf(order, ORIGIN, 'late-0', 0);
    expect(ask.length).toBeGreaterThan(0);
    expect(ask).not.toContain(ORIGIN);
    expect(ask).not.toContain(planFor(order, [], ORIGIN, 'late-0').feeders[0]);
  });
  test('with no takers in the order, the node pushed to feeds', () => {
    expect(planFor([], [], ORIGIN, 'alone').feeders).toEqual([ORIGIN]);
  });
});
