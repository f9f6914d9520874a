// Providers from this node's own records: one whose addresses were never learned is skipped quietly, one the peer
// store fails to read is skipped and told, and the others are given all the same.
import { generateKeyPair } from '@libp2p/crypto/keys';
import { NotFoundError } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { pino } from 'pino';
import { expect, test } from 'vitest';
import { keyToCid } from './kad-keys.js';
import { storedProviders } from './provider-lookup.js';
import type { MeshNode } from './libp2p-node.js';

const newPeer = async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));

async function listed(get: (id: unknown) => Promise<unknown>, ids: unknown[]): Promise<{ providers: string[]; warnings: string[] }> {
  const libp2p = { peerStore: { get } } as unknown as MeshNode['libp2p'];
  const warnings: string[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).err?.message) });
  const providers: string[] = [];
  for await (const p of storedProviders(libp2p, { getProviders: async () => ids, addProvider: async () => {} } as never, keyToCid('k'), AbortSignal.timeout(1000), log)) providers.push(p.id);
  return { providers, warnings };
}

test('a provider without known addresses is skipped; one the peer store fails to read is told, the others given', async () => {
  const [known, unknown, failing] = [await newPeer(), await newPeer(), await newPeer()];
  const addresses = [{ multiaddr: multiaddr('/ip4/10.0.0.1/tcp/4001') }];
  const get = async (id: unknown) => {
    if (String(id) === unknown.toString()) throw new NotFoundError('no such peer');
    if (String(id) === failing.toString()) throw new Error('datastore closed');
    return { addresses };
  };
  expect(await listed(get, [unknown, failing, known])).toEqual({ providers: [known.toString()], warnings: ['datastore closed'] });
});
