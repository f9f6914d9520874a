import { afterEach, describe, expect, test, vi } from 'vitest';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Connection, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import { BootstrapDialer, retryDelayMs, type BootstrapDialerOptions, type Dialable } from './bootstrap-dialer.js';

const log = pino({ level: 'silent' });
const newPeer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
const addrOf = (p: PeerId, port: number): string => `/ip4/127.0.0.1/tcp/${port}/p2p/${p.toString()}`;
/** The dialers run on the test's own clock (see start()): a loaded machine fires real timers late, or together. */
const sleep = (ms: number) => vi.advanceTimersByTimeAsync(ms);

/** A libp2p stand-in: peers listed in `up` accept dials; every dial is recorded with its time. */
class FakeNet extends EventTarget implements Dialable {
  readonly connected = new Set<string>();
  readonly dials: Array<{ peer: string; at: number }> = [];
  readonly up = new Set<string>();
  /** Connections to peers that are not bootstrap peers. */
  others = 0;
  /** How often the dialer looked at the connections. */
  looks = 0;
  constructor(readonly peerId: PeerId) {
    super();
  }

  /** Closes the connection to a bootstrap peer, or `n` others, as libp2p would: with an event. */
  close(peer: string | { others: number }): void {
    if (typeof peer === 'string') this.connected.delete(peer);
    else this.others -= peer.others;
    this.dispatchEvent(new Event('connection:close'));
  }

  async dial(addr: Multiaddr): Promise<Connection> {
    const peer = addr.getComponents().find((c) => c.name === 'p2p')!.value!;
    this.dials.push({ peer, at: Date.now() });
    if (!this.up.has(peer)) throw new Error('connection refused');
    this.connected.add(peer);
    return { remotePeer: { toString: () => peer } } as unknown as Connection;
  }

  getConnections(peer?: PeerId): Connection[] {
    this.looks++;
    if (peer === undefined) return Array.from({ length: this.connected.size + this.others }, () => ({}) as Connection);
    return this.connected.has(peer.toString()) ? [{} as Connection] : [];
  }
}

const dialers: BootstrapDialer[] = [];
afterEach(() => {
  dialers.splice(0).forEach((d) => d.stop());
  vi.useRealTimers();
});

function start(net: FakeNet, addrs: string[], opts: Partial<BootstrapDialerOptions> = {}): BootstrapDialer {
  const d = new BootstrapDialer(net, addrs, log, { intervalMs: 40, maxDelayMs: 400, keep: 2, enough: 8, dialTimeoutMs: 1_000, ...opts });
  dialers.push(d);
  if (!vi.isFakeTimers()) vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
  d.start();
  return d;
}

/** A node started with `seeds` bootstrap peers, all up, once it has dialed them. */
async function joined(seeds: number): Promise<FakeNet> {
  const peers = await Promise.all(Array.from({ length: seeds }, newPeer));
  const net = new FakeNet(await newPeer());
  peers.forEach((s) => net.up.add(s.toString()));
  start(net, peers.map((s, i) => addrOf(s, 4001 + i)));
  await sleep(150);
  return net;
}

describe('retryDelayMs', () => {
  const opts = { intervalMs: 2_000, maxDelayMs: 30_000 };
  test('doubles per failure up to the cap, jittered into the upper half', () => {
    expect([1, 2, 3, 4, 5, 9].map((f) => retryDelayMs(f, opts, () => 0))).toEqual([1_000, 2_000, 4_000, 8_000, 15_000, 15_000]);
    expect(retryDelayMs(3, opts, () => 0.999_999)).toBeCloseTo(8_000, 0);
    expect(retryDelayMs(3, opts, () => 0.5)).toBe(6_000);
  });
});

describe('BootstrapDialer', () => {
  test('stays connected to `keep` of many listed peers, not to all, and not every node to the same ones', async () => {
    const seeds = await Promise.all(Array.from({ length: 6 }, newPeer));
    const addrs = seeds.map((s, i) => addrOf(s, 4001 + i));
    const nets = await Promise.all(Array.from({ length: 8 }, async () => new FakeNet(await newPeer())));
    for (const net of nets) {
      seeds.forEach((s) => net.up.add(s.toString()));
      start(net, addrs);
    }
    await sleep(200);
    for (const net of nets) expect(net.connected.size).toBe(2);
    const chosen = new Set(nets.map((n) => [...n.connected].sort().join()));
    expect(chosen.size, 'every node picked the same bootstrap peers').toBeGreaterThan(1);
  });

  test('leaves bootstrap peers alone once the node has enough connections, and dials them again when it has not', async () => {
    const net = await joined(3);
    expect(net.connected.size).toBe(2);
    net.others = 7; // 9 connections: a bootstrap peer at its cap closes one, and is not dialed again
    net.close([...net.connected][0]);
    const dials = net.dials.length;
    await sleep(500);
    expect(net.dials.length).toBe(dials);
    net.close({ others: 5 }); // most of the mesh went away: back to the bootstrap peers
    await sleep(200);
    expect(net.connected.size).toBe(2);
  });

  test('once connected to those it keeps it stops looking, until a connection closes', async () => {
    const net = await joined(2);
    expect(net.connected.size).toBe(2);
    const looks = net.looks;
    await sleep(2_000); // 50 intervals
    expect(net.looks).toBe(looks);
    const [gone] = [...net.connected];
    net.close(gone);
    await sleep(50); // within an interval
    expect(net.connected.has(gone)).toBe(true);
    expect(net.dials.filter((d) => d.peer === gone)).toHaveLength(2);
  });

  test('dials another listed peer when one of those it keeps goes away', async () => {
    const net = await joined(3);
    const [gone] = [...net.connected];
    net.up.delete(gone);
    net.close(gone);
    await sleep(150);
    expect(net.connected.size).toBe(2);
    expect(net.connected.has(gone)).toBe(false);
  });

  test('spreads first dials of nodes started together, and backs off from a peer that is down', async () => {
    const seed = await newPeer();
    const nets = await Promise.all(Array.from({ length: 20 }, async () => new FakeNet(await newPeer())));
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const t0 = Date.now();
    for (const net of nets) start(net, [addrOf(seed, 4001)], { intervalMs: 400, maxDelayMs: 1_600 });
    await sleep(2_600);
    const firsts = nets.map((n) => n.dials[0].at - t0);
    // Within half an interval.
    expect(Math.max(...firsts) - Math.min(...firsts), 'first dials not spread over half an interval').toBeGreaterThan(100);
    // Without backoff, a dial every 400 ms: 7 in 2.6 s; with it (200–400, 400–800, then 800–1600 ms), the fifth comes
    // 2.2 s after the first at the earliest, the sixth 3 s: at most 5.
    for (const net of nets) expect(net.dials.length).toBeLessThanOrEqual(5);
    const seconds = nets.map((n) => n.dials[1].at - n.dials[0].at);
    expect(new Set(seconds.map((s) => Math.round(s / 40))).size, 'retries not jittered').toBeGreaterThan(1);
  });

  test('never dials itself when the fleet-wide list names it', async () => {
    const self = await newPeer();
    const net = new FakeNet(self);
    net.up.add(self.toString());
    start(net, [addrOf(self, 4001)]);
    await sleep(100);
    expect(net.dials).toEqual([]);
  });
});
