// A time-stepped fluid simulation of replicating one pushed image to a fleet, on the plan meshd computes
// (src/node/replication-plan.ts, imported, not copied). Host 0 is the node pushed to; hosts 1..N−1 take.
// Each taker takes each stripe on one stream from the feeder the plan names; a stream carries its stripe's
// pieces in blob order, and never gets ahead of what its feeder had a hop's lag before (streaming through).
// Per step, the streams that can move share each host's upload, download and CPU max-min fairly
// (fair-share.ts). A host that dies stops sending and taking; a stream it fed stalls for `detectMs`, then
// asks again, from the stand-ins the plan names (standInsOf; several at once, or in shares, where it says so),
// a dead one costing STAND_IN_ANSWER_MS more, and last from the node pushed to, as the replicator's lanes do;
// so does, at once, a stream whose feeder the taker does not know (views that differ, host-plan.ts). A taker
// holding every stripe but one is in the endgame (mirror/lanes.ts): that stripe's end also comes from the first
// of its helpers (helpersOf) that holds the image whole, and shares from the holder the plan names.
// `plan: 'chain'` models the replicator before stripes: one stream per taker from the taker before it.
import { digestOf } from '../../src/oci/digest.js';
import { AFTER_A_STAND_IN, CHUNK_BYTES, ENDGAME_MIN_BYTES, FEEDER_FINISH_MS, STAND_IN_ANSWER_MS } from '../../src/mirror/lanes.js';
import { AWAIT_WHOLE_MS } from '../../src/mirror/peer-protocol.js';
import { maxMinRates } from './fair-share.js';
import type { Calibration } from './calibration.js';
import { hostPlan } from './host-plan.js';
import { mulberry32 } from '../fuzz/prng.js';

export interface ReplicationSimOptions {
  /** Hosts, the node pushed to included. */
  nodes: number;
  mbit: number;
  layersMiB: number[];
  /** Takers that die mid-way, and takers each node does not know (host-plan.ts Views), percent. */
  deathsPct?: number;
  missingPct?: number;
  seed?: number;
  plan?: 'stripes' | 'chain';
  /** Time from a feeder's death until its children ask elsewhere (stall timeout, or a reset connection). */
  detectMs?: number;
  dtMs?: number;
  calibration: Calibration;
}

export interface ReplicationSimResult {
  nodes: number;
  mbit: number;
  sizeMiB: number;
  stripes: number;
  /** Time until every live host holds the whole image, over S/B. */
  ratio: number;
  /** The median and the first live taker's time over S/B. */
  p50Ratio: number;
  firstRatio: number;
  deaths: number;
  /** Live takers that finished, of all live takers. */
  done: number;
  live: number;
  idealSeconds: number;
  seconds: number;
}

const MiB = 1 << 20;
export function simulateReplication(opts: ReplicationSimOptions): ReplicationSimResult {
  const { nodes, mbit, layersMiB, calibration: c } = opts;
  if (!(nodes >= 2)) throw new Error('a replication needs the node pushed to and at least one taker');
  const seed = opts.seed ?? 1;
  const dt = (opts.dtMs ?? 5) / 1000;
  const detect = (opts.detectMs ?? 1000) / 1000;
  const rand = mulberry32(seed);
  const blobs = layersMiB.map((m, i) => ({ mediaType: 'layer', digest: digestOf(Buffer.from(`${seed}/${i}`)), size: Math.round(m * MiB) }));
  const sizeBytes = blobs.reduce((n, b) => n + b.size, 0);
  const idealSeconds = (sizeBytes * 8) / (mbit * 1e6);
  const views = opts.missingPct ? { missingPct: opts.missingPct, rand } : undefined;
  const { k, feeders, lengths, standIns, helpers } = hostPlan(nodes, blobs, digestOf(Buffer.from(`image ${seed}`)), opts.plan ?? 'stripes', views);

  // Streams: taker h's stripe s is stream (h−1)·k + s.
  const streams = (nodes - 1) * k;
  const takerOf = (j: number) => Math.floor(j / k) + 1;
  const streamOf = (h: number, s: number) => (h - 1) * k + s;
  const feeder = new Int32Array(streams);
  /** Bytes of each stream from its start, and in the endgame from its end (taken from a helper). */
  const progress = new Float64Array(streams);
  const back = new Float64Array(streams);
  const openAt = new Float64Array(streams);
  const askAgainAt = new Float64Array(streams).fill(Infinity);
  /** The stand-ins of an orphaned stream, how many it takes from at once, and the next to ask. */
  const asked: { list: number[]; atOnce: number; byChunk?: number[]; whole?: number; next: number }[] = [];
  for (let j = 0; j < streams; j++) {
    feeder[j] = feeders[takerOf(j)][j % k];
    openAt[j] = (c.startMs + c.requestMs) / 1000;
    if (feeder[j] < 0) askAgainAt[j] = c.startMs / 1000; // a feeder not known here: its stand-ins at once
  }

  // Deaths: whole hosts, at a random time in the middle of the ideal transfer.
  const alive = new Uint8Array(nodes).fill(1);
  const deathCount = Math.round(((opts.deathsPct ?? 0) / 100) * (nodes - 1));
  const takers = Array.from({ length: nodes - 1 }, (_, i) => i + 1);
  for (let i = takers.length - 1; i > 0; i--) {
    const r = Math.floor(rand() * (i + 1));
    [takers[i], takers[r]] = [takers[r], takers[i]];
  }
  const victims = takers.slice(0, deathCount);
  const deaths = victims.map((h) => ({ h, at: idealSeconds * (0.2 + 0.6 * rand()) })).sort((a, b) => a.at - b.at);

  // Resources: upload, download and CPU of each host, then the machine's CPU when it is shared.
  const UP = 0, DOWN = nodes, CPU = 2 * nodes, MACHINE = 3 * nodes;
  const capacity = new Float64Array(c.sharedCores === undefined ? 3 * nodes : 3 * nodes + 1);
  const link = (mbit * 1e6 * c.efficiency) / 8;
  capacity.fill(link, 0, 2 * nodes).fill(Math.max(0, c.coresPerHost - c.idleCoresPerHost), CPU, 3 * nodes);
  if (c.sharedCores !== undefined) capacity[MACHINE] = Math.max(0, c.sharedCores - nodes * c.idleCoresPerHost);
  // What each stream held a hop's lag ago: a ring of snapshots taken every step.
  const lagSteps = Math.max(1, Math.round((c.hopMs / 1000 + c.hopBytes / link) / dt));
  const history = Array.from({ length: lagSteps }, () => new Float64Array(streams));
  const recvCpu = (c.recvCpuSecPerMiB + c.recvCpuSecPerMiBMbit / mbit) / MiB, sendCpu = c.sendCpuSecPerMiB / MiB;
  const perFlow = 3 + 2 * k;
  const flows = {
    count: 0, perFlow, cap: new Float64Array(2 * streams), resources: new Int32Array(2 * streams * perFlow), weights: new Float64Array(2 * streams * perFlow),
  };
  // A stream takes from more than one host at once only when orphaned (a dead host's streams take nothing).
  const flowStream = new Int32Array(2 * streams);
  const flowBack = new Uint8Array(2 * streams);
  const rate = new Float64Array(2 * streams);
  /** Each stream's rate from the front in the step before: the feeder's pace, for the endgame. */
  const frontRate = new Float64Array(streams);
  const doneAt = new Float64Array(nodes).fill(Infinity);
  doneAt[0] = 0;
  const remaining = new Int32Array(nodes).fill(k);
  remaining[0] = 0;
  /** When each taker came to hold every stripe but one (the endgame), and its helpers per stream. */
  const endgameAt = new Float64Array(nodes).fill(Infinity);
  const helpersOfStream: number[][] = [];

  const limit = idealSeconds * 50 + 60;
  let t = 0;
  let lastMoved = 0;
  let lagged = history[0];
  for (let step = 0; t < limit; step++, t += dt) {
    while (deaths.length && deaths[0].at <= t) {
      const { h } = deaths.shift()!;
      alive[h] = 0;
      // A stand-in that stops: the rest then comes from the next ones at once (lanes.ts).
      for (let j = 0; j < streams; j++) if (feeder[j] === h) (feeder[j] = -1), (askAgainAt[j] = t + detect), asked[j] && (asked[j].atOnce = Math.max(asked[j].atOnce, AFTER_A_STAND_IN));
    }
    lagged = history[step % lagSteps];
    flows.count = 0;
    for (let j = 0; j < streams; j++) {
      const s = j % k, h = takerOf(j);
      if (!alive[h] || progress[j] >= lengths[s]) continue;
      if (feeder[j] < 0) {
        if (t < askAgainAt[j]) continue;
        const next = opts.plan === 'chain' ? anyAhead(j, s, h) : standIn(j, s, h);
        // A stand-in that is dead too does not answer either: given up after STAND_IN_ANSWER_MS (the chain
        // waits as long as the first took to notice), and the rest then comes from the next ones at once.
        if (!alive[next]) {
          askAgainAt[j] = t + (opts.plan === 'chain' ? detect : STAND_IN_ANSWER_MS / 1000);
          if (asked[j]) asked[j].atOnce = Math.max(asked[j].atOnce, AFTER_A_STAND_IN);
          continue;
        }
        feeder[j] = next;
        openAt[j] = t + c.requestMs / 1000;
      }
      if (t < openAt[j]) continue;
      const spread = asked[j];
      // Shares in the endgame: every chunk from the holder of the whole stripe (lanes.ts).
      if (spread?.whole !== undefined && t >= endgameAt[h] + c.requestMs / 1000) {
        flowFrom(spread.whole, j, s, h);
        continue;
      }
      if (spread?.byChunk) {
        sharesFrom(spread.byChunk, j, s, h);
        continue;
      }
      flowFrom(feeder[j], j, s, h);
      // Stand-ins asked at once take chunks of the rest in order: the stream moves at the sum of their rates.
      for (let i = 0, more = (spread?.atOnce ?? 1) - 1; more > 0 && i < spread.list.length; i++) {
        const x = spread.list[i];
        if (x !== feeder[j] && x !== 0 && alive[x] && flowFrom(x, j, s, h)) more--;
      }
    }
    // The endgame (lanes.ts): a taker's last stripe, while enough is left or the feeder is slow about the rest,
    // also from its end, from a helper that holds it whole (here the whole image: lanes.ts asks per blob, a little earlier).
    for (let h = 1; h < nodes; h++) {
      if (!alive[h] || remaining[h] !== 1 || endgameAt[h] > t) continue;
      for (let s = 0; s < k; s++) {
        const j = streamOf(h, s);
        const left = lengths[s] - progress[j] - back[j];
        if (progress[j] >= lengths[s] || (left < ENDGAME_MIN_BYTES && left <= (frontRate[j] * FEEDER_FINISH_MS) / 1000)) continue;
        const x = helperOf(j, h, s);
        if (x >= 0) flowFrom(x, j, s, h, true);
      }
    }
    history[step % lagSteps].set(progress);
    if (flows.count === 0) {
      // Nothing moves. Once the lag has shown every byte that moved, on to the next thing that can change that.
      if (step - lastMoved > lagSteps) {
        const next = nextEvent();
        if (next === Infinity) break;
        t = Math.max(t, next - dt);
      }
      continue;
    }
    lastMoved = step;
    maxMinRates(capacity, flows, rate);
    frontRate.fill(0);
    for (let f = 0; f < flows.count; f++) if (!flowBack[f]) frontRate[flowStream[f]] += rate[f];
    for (let f = 0; f < flows.count; f++) {
      const j = flowStream[f], s = j % k, h = takerOf(j);
      if (progress[j] >= lengths[s]) continue;
      const moved = Math.min(lengths[s] - progress[j] - back[j], rate[f] * dt);
      if (flowBack[f]) back[j] += moved;
      else progress[j] += moved;
      if (progress[j] + back[j] < lengths[s] - 1e-6) continue;
      progress[j] = lengths[s];
      if (--remaining[h] === 1) endgameAt[h] = t + dt;
      if (remaining[h] === 0) doneAt[h] = t + dt + c.finishMs / 1000;
    }
  }

  /**
   * A flow into stream j (taker h, stripe s) from host `from`, when it has bytes the stream lacks: from the
   * stream's front up to what the endgame took from its end, or (`fromEnd`, a helper holding it whole) that.
   */
  function flowFrom(from: number, j: number, s: number, h: number, fromEnd = false): boolean {
    const has = Math.min(from === 0 || fromEnd ? lengths[s] : lagged[streamOf(from, s)], lengths[s] - back[j]);
    if (has <= progress[j]) return false;
    const f = flows.count++;
    flowStream[f] = j;
    flowBack[f] = fromEnd ? 1 : 0;
    flows.cap[f] = (has - progress[j]) / dt;
    const at = f * perFlow;
    flows.resources.fill(-1, at, at + perFlow);
    flows.resources.set([UP + from, DOWN + h, CPU + from, CPU + h, c.sharedCores === undefined ? -1 : MACHINE], at);
    flows.weights.set([1, 1, sendCpu, recvCpu, sendCpu + recvCpu], at);
    return true;
  }

  /**
   * Stream j taking the rest in shares (standInsOf's byChunk): chunks in turn from each source, a round at
   * a time, so one flow whose every byte costs each source's upload 1/n. A source other than the node pushed
   * to holds its share a round ahead of its own stream at most; a dead one is replaced by the node pushed to.
   */
  function sharesFrom(sources: number[], j: number, s: number, h: number): void {
    let has = lengths[s] - back[j];
    for (const x of sources) if (x !== 0 && alive[x]) has = Math.min(has, lagged[streamOf(x, s)] + sources.length * CHUNK_BYTES);
    if (has <= progress[j]) return;
    const f = flows.count++;
    flowStream[f] = j;
    flowBack[f] = 0;
    flows.cap[f] = (has - progress[j]) / dt;
    const at = f * perFlow, n = sources.length;
    flows.resources.fill(-1, at, at + perFlow), flows.weights.fill(0, at, at + perFlow);
    flows.resources.set([DOWN + h, CPU + h, c.sharedCores === undefined ? -1 : MACHINE], at);
    flows.weights.set([1, recvCpu, sendCpu + recvCpu], at);
    sources.forEach((x, i) => {
      const from = alive[x] ? x : 0;
      flows.resources.set([UP + from, CPU + from], at + 3 + 2 * i);
      flows.weights.set([1 / n, sendCpu / n], at + 3 + 2 * i);
    });
  }

  /** When a stream may start or ask again, or a host dies, after now: Infinity if never. */
  function nextEvent(): number {
    let next = deaths[0]?.at ?? Infinity;
    for (let j = 0; j < streams; j++) {
      if (!alive[takerOf(j)] || progress[j] >= lengths[j % k]) continue;
      const at = feeder[j] < 0 ? askAgainAt[j] : openAt[j];
      if (at > t) next = Math.min(next, at);
    }
    return next;
  }

  /**
   * The helper stream j takes its end from now, or -1: asked in turn from the endgame's start, each answering
   * once it holds the whole image, or after AWAIT_WHOLE_MS that it does not (a dead one: no answer in that and STAND_IN_ANSWER_MS).
   */
  function helperOf(j: number, h: number, s: number): number {
    let asked = endgameAt[h];
    for (const x of (helpersOfStream[j] ??= helpers(h, s))) {
      const whole = alive[x] ? doneAt[x] : Infinity;
      if (whole <= asked + AWAIT_WHOLE_MS / 1000) return Math.max(asked, whole) + c.requestMs / 1000 <= t ? x : -1;
      asked += (AWAIT_WHOLE_MS + (alive[x] ? 0 : STAND_IN_ANSWER_MS)) / 1000;
    }
    return -1;
  }

  /** The next of taker h's stand-ins for stripe s (replication-plan.ts), the node pushed to once all were asked. */
  function standIn(j: number, s: number, h: number): number {
    const list = (asked[j] ??= { ...standIns(h, s), next: 0 });
    return list.list[Math.min(list.next++, list.list.length - 1)];
  }

  /** The replicator before stripes: a random live taker further along stripe s than stream j, else the node pushed to. */
  function anyAhead(j: number, s: number, self: number): number {
    const ahead: number[] = [];
    for (let h = 1; h < nodes; h++) if (h !== self && alive[h] && progress[streamOf(h, s)] > progress[j]) ahead.push(h);
    return ahead.length ? ahead[Math.floor(rand() * ahead.length)] : 0;
  }

  const times = [...doneAt.slice(1)].filter((_, i) => alive[i + 1]).sort((a, b) => a - b);
  const last = times.at(-1) ?? 0;
  return {
    nodes, mbit, sizeMiB: sizeBytes / MiB, stripes: k,
    ratio: last / idealSeconds,
    p50Ratio: (times[Math.floor((times.length - 1) / 2)] ?? 0) / idealSeconds,
    firstRatio: (times[0] ?? 0) / idealSeconds,
    deaths: deathCount,
    done: times.filter(Number.isFinite).length,
    live: times.length,
    idealSeconds,
    seconds: last,
  };
}
