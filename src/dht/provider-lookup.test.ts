// Providers from this node's own records: one whose addresses were never learned is skipped, a peer store that
// fails is not taken for "no providers".
import { generateKeyPair } from '@libp2p/crypto/keys';
import { NotFoundError } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { expect, test } from 'vitest';
import { keyToCid } from './kad-keys.js';
import { storedProviders } from './provider-lookup.js';
import type { MeshNode } from './libp2p-node.js';

const newPeer = async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));

async function listed(get: (id: unknown) => Promise<unknown>, ids: unknown[]): Promise<string[]> {
  const libp2p = { peerStore: { get } } as unknown as MeshNode['libp2p'];
  const out: string[] = [];
  for await (const p of storedProviders(libp2p, { getProviders: async () => ids, addProvider: async () => {} } as never, keyToCid('k'), AbortSignal.timeout(1000))) out.push(p.id);
  return out;
}

test('a provider without known addresses is skipped; a failing peer store is an error, not an empty answer', async () => {
  const [known, unknown] = [await newPeer(), await newPeer()];
  const addresses = [{ multiaddr: multiaddr('/ip4/10.0.0.1/tcp/4001') }];
  const get = async (id: unknown) => {
    if (String(id) === unknown.toString()) throw new NotFoundError('no such peer');
    return { addresses };
  };
  expect(await listed(get, [unknown, known])).toEqual([known.toString()]);
  await expect(listed(async () => { throw new Error('datastore closed'); }, [known])).rejects.toThrow('datastore closed');
});
