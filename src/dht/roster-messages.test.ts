import { describe, expect, test } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { LEAVE, parseListed, parseMessage } from './roster-messages.js';

const info = { name: 'h1', labels: { zone: 'a' }, dataPlanePort: 5001 };
const bytes = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

describe('members topic messages', () => {
  test('an announcement is a NodeInfo and at most 16 addresses; a leave is a leave', () => {
    expect(parseMessage(bytes({ info, addrs: ['/ip4/10.0.0.1/tcp/4001'] }))).toEqual({ info, addrs: ['/ip4/10.0.0.1/tcp/4001'] });
    expect(parseMessage(bytes({ leaving: true }))).toBe(LEAVE);
    for (const bad of [{ info }, { info: { name: 'x' }, addrs: [] }, { info, addrs: Array(17).fill('/ip4/1.2.3.4/tcp/1') }, { info, addrs: [7] }, 'not json', [1]]) {
      expect(parseMessage(bytes(bad)), JSON.stringify(bad)).toBeUndefined();
    }
    expect(parseMessage(bytes({ info: { ...info, name: 'x'.repeat(9000) }, addrs: [] })), 'over 8 KiB').toBeUndefined();
    expect(parseMessage(new Uint8Array([0xff, 0xfe])), 'not UTF-8').toBeUndefined();
    expect(parseMessage(bytes({ info, addrs: ['/foo/bar', '/ip4/10.0.0.1/tcp/4001', 'nonsense'] })), 'addresses it cannot read left out')
      .toEqual({ info, addrs: ['/ip4/10.0.0.1/tcp/4001'] });
  });

  test('a listed member has a valid peer id and an age that is not negative', async () => {
    const id = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    expect(parseListed({ id, info, addrs: [], ageMs: 5 })).toEqual({ id, info, addrs: [], ageMs: 5 });
    expect(parseListed({ id: 'QmNotAPeer', info, addrs: [], ageMs: 5 })).toBeUndefined();
    expect(parseListed({ id, info, addrs: [], ageMs: -1 })).toBeUndefined();
    expect(parseListed({ id, info, addrs: [], ageMs: 1.5 })).toBeUndefined();
    expect(parseListed({ id, info, ageMs: 0 })).toBeUndefined();
  });
});
