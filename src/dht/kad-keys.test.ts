import { describe, expect, test } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { assignRecords } from './provider-batches.js';
import { cidKadId, closestIn, keyToCid, peerKadId, prefixOf, regionTargets } from './kad-keys.js';
import { createHash } from 'node:crypto';

const xor = (a: Uint8Array, b: Uint8Array): bigint => BigInt(`0x${Buffer.from(a.map((x, i) => x ^ b[i])).toString('hex')}`);

describe('kad keys', () => {
  test('keys are CIDv1(raw, sha256(utf8 key)), as Spegel advertises them', () => {
    const cid = keyToCid('docker.io/library/app:1');
    expect(cid.version).toBe(1);
    expect(cid.code).toBe(0x55);
    expect(Buffer.from(cid.multihash.digest).toString('hex')).toBe(createHash('sha256').update('docker.io/library/app:1').digest('hex'));
  });

  test('closestIn finds the k peers nearest each target by XOR distance, nearest first, as kad-dht orders them', () => {
    const hash = (s: string) => new Uint8Array(createHash('sha256').update(s).digest());
    // Also with half the peers crowded into one corner of the key space (their first 24 bits equal).
    for (const [peers, crowded] of [[5, false], [20, false], [21, false], [50, false], [1000, false], [50, true], [1000, true]] as const) {
      const ids = Array.from({ length: peers }, (_, i) => hash(`peer${i}`)).map((id, i) => (crowded && i % 2 ? id.fill(7, 0, 3) : id));
      const closest = closestIn(ids);
      for (let t = 0; t < 200; t++) {
        const target = crowded && t % 2 ? cidKadId(keyToCid(`key ${t}`)).fill(7, 0, 2) : cidKadId(keyToCid(`key ${t}`));
        const expected = ids.map((id, i) => ({ i, d: xor(target, id) })).sort((x, y) => (x.d < y.d ? -1 : 1)).slice(0, 20).map((x) => x.i);
        expect(closest(target, 20), `${peers} peers${crowded ? ', crowded' : ''}, key ${t}`).toEqual(expected);
      }
    }
  });

  test('regionTargets yields one lookup key per region of the key space', () => {
    const targets = regionTargets(3);
    const regions = targets.map((t) => prefixOf(createHash('sha256').update(t).digest(), 3));
    expect(new Set(regions).size).toBe(8);
  });

  test('each record goes to its k closest peers; in a fleet under k, to everyone', async () => {
    const view = await Promise.all(Array.from({ length: 30 }, async () => {
      const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
      return { id, kadId: peerKadId(id) };
    }));
    const cids = Array.from({ length: 40 }, (_, i) => keyToCid(`key ${i}`));
    const everyone = new Set(view.map((p) => p.id.toString()));

    const small = assignRecords(cids, view.slice(0, 12), 20, everyone);
    expect([...small.values()].map((l) => l.length)).toEqual(Array(12).fill(40));

    const large = assignRecords(cids, view, 20, everyone);
    cids.forEach((cid, i) => {
      const holders = view.filter((p) => large.get(p.id)?.includes(i)).map((p) => p.id.toString()).sort();
      const closest = closestIn(view.map((p) => p.kadId))(cidKadId(cid), 20).map((j) => view[j].id.toString()).sort();
      expect(holders).toEqual(closest);
    });

    const onlyOne = assignRecords(cids, view, 20, new Set([view[0].id.toString()]));
    expect([...onlyOne.keys()].map(String)).toEqual([view[0].id.toString()]);
  });
});
