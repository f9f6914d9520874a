// Mesh keys as DHT content ids, and Kademlia distance computed locally.
import { createHash, randomBytes } from 'node:crypto';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import * as Digest from 'multiformats/hashes/digest';
import type { PeerId } from '@libp2p/interface';

const SHA256 = 0x12;

function sha256(bytes: Uint8Array): Uint8Array {
  return createHash('sha256').update(bytes).digest();
}

/** A mesh key (digest or image name) as Spegel advertises it: CIDv1(raw, sha256(utf8 key)). */
export function keyToCid(key: string): CID {
  return CID.createV1(raw.code, Digest.create(SHA256, sha256(Buffer.from(key, 'utf8'))));
}

/** Where a CID lives in Kademlia's key space: kad-dht hashes the multihash bytes once more. */
export function cidKadId(cid: CID): Uint8Array {
  return sha256(cid.multihash.bytes);
}

/** Where a peer lives in Kademlia's key space. */
export function peerKadId(peer: PeerId): Uint8Array {
  return sha256(peer.toMultihash().bytes);
}

/**
 * The leading 48 bits of the XOR distance as a number: enough to order peers (a tie needs two peers
 * agreeing on 48 bits of distance, which 2^48 makes negligible for any fleet) and far cheaper than bigints.
 */
export function distance48(a: Uint8Array, b: Uint8Array): number {
  let d = 0;
  for (let i = 0; i < 6; i++) d = d * 256 + (a[i] ^ b[i]);
  return d;
}

/** The first index of `sorted` (ascending) from `lo` to `hi` whose value is at least `value`. */
function lowerBound(sorted: readonly number[], value: number, lo: number, hi: number): number {
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * For many targets against one set of peers: `closest(target, k)` gives the indexes (into `peerIds`) of the `k`
 * peers closest to `target`, nearest first. The peers are sorted along the key space once; those sharing the first
 * `bits` bits with a target are then one run of that order, each nearer than any peer outside it, so the run of
 * the longest prefix still holding `k` peers holds the `k` closest: a few peers sorted per target, not all of them.
 */
export function closestIn(peerIds: readonly Uint8Array[]): (target: Uint8Array, k: number) => number[] {
  const zero = new Uint8Array(6);
  const positions = peerIds.map((id) => distance48(zero, id));
  const order = peerIds.map((_, index) => index).sort((a, b) => positions[a] - positions[b]);
  const sorted = order.map((index) => positions[index]);
  return (target, k) => {
    const at = distance48(zero, target);
    let lo = 0;
    let hi = sorted.length;
    for (let span = 2 ** 47; span >= 1 && hi - lo > k; span /= 2) {
      const start = Math.floor(at / span) * span;
      const from = lowerBound(sorted, start, lo, hi);
      const to = lowerBound(sorted, start + span, from, hi);
      if (to - from < k) break;
      lo = from;
      hi = to;
    }
    const run = order.slice(lo, hi).map((index) => ({ index, d: distance48(target, peerIds[index]) }));
    return run.sort((x, y) => x.d - y.d || x.index - y.index).slice(0, k).map((o) => o.index);
  };
}

/** The first `bits` bits of `id` as a number (bits <= 16). */
export function prefixOf(id: Uint8Array, bits: number): number {
  return ((id[0] << 8) | id[1]) >>> (16 - bits);
}

/** One random DHT lookup key for each of the 2^bits regions of the key space (bits <= 16). */
export function regionTargets(bits: number): Uint8Array[] {
  const found = new Map<number, Uint8Array>();
  while (found.size < 2 ** bits) {
    const key = new Uint8Array(randomBytes(32));
    const region = prefixOf(sha256(key), bits);
    if (!found.has(region)) found.set(region, key);
  }
  return [...found.values()];
}
