import '../polyfill.js';
import { afterAll, expect, test } from 'vitest';
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

test('no libp2p connection monitor (a stream per ping, the bulk of an idle node\'s CPU); liveness drops a dead peer as soon as it did', async () => {
  const n = await node();
  const components = (n.libp2p as unknown as { components: Record<string, unknown> }).components;
  expect(components.connectionManager, 'components are where this test looks').toBeDefined();
  expect(() => components.connectionMonitor).toThrow(/connectionMonitor not set/);
  expect(LIVENESS.intervalMs + LIVENESS.timeoutMs).toBeLessThanOrEqual(20_000);
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
