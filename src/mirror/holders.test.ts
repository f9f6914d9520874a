// The order in which holders are asked: nearest first, peers that sent wrong bytes last, for an hour.
import { describe, expect, it } from 'vitest';
import { Holders, STRIKE_MEMORY_MS } from './holders.js';
import type { DataPlane } from '../dht/membership.js';

const peers: DataPlane[] = [
  { id: 'near', url: 'https://10.0.0.1:5001', rttMs: 2 },
  { id: 'mid', url: 'https://10.0.0.2:5001', rttMs: 20 },
  { id: 'far', url: 'https://10.0.0.3:5001', rttMs: 80 },
];

function holders() {
  let now = 1_000_000;
  const h = new Holders({ members: { holders: async () => peers.map((p) => ({ ...p })), dataPlaneOf: () => undefined }, lookupTimeoutMs: 1000 }, () => now);
  const order = async () => (await h.of('sha256:x')).map((p) => p.id);
  return { h, order, advance: (ms: number) => void (now += ms) };
}

describe('Holders', () => {
  it('asks a peer that sent wrong bytes last, the one struck most after the others, and forgives it an hour after its last strike', async () => {
    const { h, order, advance } = holders();
    expect(await order()).toEqual(['near', 'mid', 'far']);
    h.strike('near');
    h.strike('mid');
    h.strike('near');
    expect(await order()).toEqual(['far', 'mid', 'near']);
    advance(STRIKE_MEMORY_MS / 2);
    h.strike('mid');
    advance(STRIKE_MEMORY_MS / 2 + 1);
    expect(await order(), "near's strikes are an hour old, mid's half").toEqual(['near', 'far', 'mid']);
    advance(STRIKE_MEMORY_MS / 2);
    expect(await order()).toEqual(['near', 'mid', 'far']);
  });
});
