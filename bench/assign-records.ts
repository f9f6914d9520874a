// `node dist/bench/assign-records.js`: the CPU of working out which peers hold which provider records (a batch's
// assignRecords, synchronous on meshd's event loop), against the reference of ordering the whole view for each
// key, as Kademlia's textbook does. Each shape runs both, alternating, and prints the median of 3 rounds.
// Knobs: BENCH_SHAPES="10000x200,100000x200,20000x1000" (keys x peers in the view).
import '../src/polyfill.js';
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import * as Digest from 'multiformats/hashes/digest';
import { cidKadId, distance48, peerKadId } from '../src/dht/kad-keys.js';
import { assignRecords } from '../src/dht/provider-batches.js';
import type { ViewPeer } from '../src/dht/network-view.js';
import { fixed, median, table } from './lib/stats.js';

const K = 20;
const ROUNDS = 3;

/** The reference: every peer's distance to each key, sorted, the first k taken. */
function reference(cids: CID[], view: ViewPeer[]): number {
  let records = 0;
  for (const cid of cids) {
    const target = cidKadId(cid);
    records += view.map((p) => distance48(target, p.kadId)).sort((a, b) => a - b).slice(0, K).length;
  }
  return records;
}

function timed(run: () => unknown): number {
  const started = performance.now();
  run();
  return performance.now() - started;
}

const rows = [['keys', 'peers', 'assignRecords (ms)', 'reference (ms)', 'reference / assignRecords']];
for (const shape of (process.env.BENCH_SHAPES ?? '10000x200,100000x200,20000x1000').split(',')) {
  const [keys, peers] = shape.split('x').map(Number);
  const cids = Array.from({ length: keys }, () => CID.createV1(raw.code, Digest.create(0x12, randomBytes(32))));
  const view = await Promise.all(Array.from({ length: peers }, async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
    return { id, kadId: peerKadId(id) };
  }));
  const everyone = new Set(view.map((p) => p.id.toString()));
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    ours.push(timed(() => assignRecords(cids, view, K, everyone)));
    theirs.push(timed(() => reference(cids, view)));
  }
  rows.push([String(keys), String(peers), fixed(median(ours), 0), fixed(median(theirs), 0), fixed(median(theirs) / median(ours), 1)]);
}
console.log(table(rows));
