import '../polyfill.js';
import { afterAll, expect, test, vi } from 'vitest';
import { pino } from 'pino';
import type { Connection } from '@libp2p/interface';
import { LIVENESS, type MeshNode } from './libp2p-node.js';
import { Liveness } from './liveness.js';
import { meshNodes } from '../../test/helpers/mesh-nodes.js';

const log = pino({ level: 'silent' });
const nodes = meshNodes();
afterAll(() => nodes.stopAll());
const node = (bootstrap?: string[]) => nodes.start(bootstrap);

async function connected(a: MeshNode, b: MeshNode): Promise<Connection> {
  for (;;) {
    const [conn] = a.libp2p.getConnections(b.libp2p.peerId);
    if (conn) return conn;
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('no libp2p connection monitor (a stream per ping, the bulk of an idle node\'s CPU); liveness drops a dead peer within 27.5 s', async () => {
  const n = await node();
  const components = (n.libp2p as unknown as { components: Record<string, unknown> }).components;
  expect(components.connectionManager, 'components are where this test looks').toBeDefined();
  expect(() => components.connectionMonitor).toThrow(/connectionMonitor not set/);
  expect(1.75 * LIVENESS.intervalMs + LIVENESS.timeoutMs).toBeLessThanOrEqual(27_500);
});

test('liveness pings a real connection on its muxer, and drops it once the peer\'s yamux stops answering', async () => {
  const server = await node();
  const client = await node(server.libp2p.getMultiaddrs().map(String));
  const conn = await connected(client, server);
  const liveness = new Liveness(client.libp2p, log, { intervalMs: 50, timeoutMs: 300 });
  liveness.start();
  try {
    conn.rtt = undefined;
    for (let i = 0; i < 100 && conn.rtt === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    expect(conn.rtt, 'rtt measured by a muxer ping').toBeTypeOf('number');
    expect(conn.status).toBe('open');
    // The server stops answering pings (as a paused process would): its muxer ignores Ping frames.
    const serverConn = await connected(server, client);
    (serverConn as unknown as { muxer: { handlePing(): void } }).muxer.handlePing = () => {};
    for (let i = 0; i < 100 && conn.status === 'open'; i++) await new Promise((r) => setTimeout(r, 20));
    expect(conn.status).not.toBe('open');
  } finally {
    liveness.stop();
  }
});

test('an idle real connection is pinged from one end only: the other hears those pings', async () => {
  const server = await node();
  const client = await node(server.libp2p.getMultiaddrs().map(String));
  await connected(client, server);
  await connected(server, client);
  const sent = { outbound: 0, inbound: 0 };
  for (const conn of [...client.libp2p.getConnections(), ...server.libp2p.getConnections()]) {
    const muxer = (conn as unknown as { muxer: { ping(o: unknown): Promise<number> } }).muxer;
    const ping = muxer.ping.bind(muxer);
    muxer.ping = (o) => (sent[conn.direction]++, ping(o));
  }
  const opts = { intervalMs: 200, timeoutMs: 1_000 };
  const both = [new Liveness(client.libp2p, log, opts), new Liveness(server.libp2p, log, opts)];
  both.forEach((l) => l.start());
  try {
    await new Promise((r) => setTimeout(r, 3_000)); // start-up traffic (identify, the DHT's first walks) stands in for pings
    sent.outbound = sent.inbound = 0;
    await new Promise((r) => setTimeout(r, 2_000));
  } finally {
    both.forEach((l) => l.stop());
  }
  // One ping per 200 ms: about 10 in 2 s, where both ends pinging would make about 20.
  const total = sent.outbound + sent.inbound;
  expect(total, JSON.stringify(sent)).toBeGreaterThanOrEqual(5);
  expect(total, JSON.stringify(sent)).toBeLessThanOrEqual(12);
  expect(client.libp2p.getConnections(server.libp2p.peerId).map((c) => c.status)).toEqual(['open']);
});

test('two connected nodes arm no timer that wakes them more often than every 5 s, and one 5-s interval at most', async () => {
  // Each wake of an idle process costs CPU of its own. gossipsub's heartbeat re-arms a setTimeout (every second
  // by default), kad-dht's close-peer tagging is a setInterval (every 5 s by default); gossipsub's score decay
  // is the one 5-s interval left.
  await nodes.stopAll(); // the earlier tests' nodes would arm timers of their own
  const intervals = vi.spyOn(globalThis, 'setInterval');
  const timeouts = vi.spyOn(globalThis, 'setTimeout');
  try {
    const server = await node();
    const client = await node(server.libp2p.getMultiaddrs().map(String));
    await connected(client, server);
    await connected(server, client);
    await new Promise((r) => setTimeout(r, 1_000)); // past start-up: protocols served after libp2p started are told peers once
    const from = timeouts.mock.calls.length;
    await new Promise((r) => setTimeout(r, 6_000));
    // Timers armed again and again from one place in the code, over 6 s: a poller arms its callback each time it wakes.
    const arms = new Map<string, number>();
    for (const [fn, ms] of timeouts.mock.calls.slice(from)) {
      if ((ms ?? 0) >= 100) arms.set(String(fn), (arms.get(String(fn)) ?? 0) + 1);
    }
    const pollers = [...arms].filter(([, n]) => n > 2 * 2); // two nodes, each at most twice in 6 s
    expect(pollers.map(([fn, n]) => `${n}× ${fn.slice(0, 80)}`)).toEqual([]);
    const periods = intervals.mock.calls.map(([, ms]) => ms ?? 0);
    expect(periods.length, 'setInterval calls seen (kad-dht sets some)').toBeGreaterThan(0);
    expect(periods.filter((ms) => ms < 5_000), `periods set: ${periods.join(', ')}`).toEqual([]);
    expect(periods.filter((ms) => ms === 5_000), `periods set: ${periods.join(', ')}`).toHaveLength(2); // one per node
  } finally {
    intervals.mockRestore();
    timeouts.mockRestore();
  }
});

test('a protocol a node serves from after its peers identified it reaches them (identify push): catch-up asks by it', async () => {
  const late = '/layermesh/late/1.0.0';
  const server = await node();
  const client = await node(server.libp2p.getMultiaddrs().map(String));
  const first = new Promise<void>((resolve) => client.libp2p.addEventListener('peer:identify', () => resolve(), { once: true }));
  const told = new Promise<boolean>((resolve) => {
    client.libp2p.addEventListener('peer:identify', (evt) => evt.detail.protocols.includes(late) && resolve(true));
    setTimeout(() => resolve(false), 10_000).unref();
  });
  await first;
  await server.libp2p.handle(late, (stream) => void stream.close());
  expect(await told).toBe(true);
});
