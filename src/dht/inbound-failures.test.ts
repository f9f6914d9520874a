// Garbage on the p2p port, on real loopback sockets: every such connection is closed by the node and logged
// (rate-limited) with its remote address, and the node still accepts real peers afterwards.
import '../polyfill.js';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createMeshNode, type MeshNode } from './libp2p-node.js';
import { generateSwarmKey, parseSwarmKey } from './swarm-key.js';

interface LogLine {
  level: number;
  component?: string;
  msg: string;
  remote?: string;
  reason?: string;
  hint?: string;
}

const WARN = 40;
const nodes: MeshNode[] = [];
const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);

beforeAll(() => {
  process.on('unhandledRejection', onRejection);
});

afterAll(async () => {
  await Promise.allSettled(nodes.map((n) => n.stop()));
  process.off('unhandledRejection', onRejection);
});

/** A node as the daemon builds it, with its log lines (warn and above) captured. */
async function node(swarmKey?: Uint8Array, bootstrap: string[] = []): Promise<{ node: MeshNode; lines: LogLine[]; tcp: { host: string; port: number } }> {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString()) as LogLine);
      done();
    },
  });
  const n = await createMeshNode({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    mdns: false,
    swarmKey,
    logger: pino({ level: 'warn' }, sink),
    recordTtlMs: 60_000,
    bootstrapIntervalMs: 200,
  });
  nodes.push(n);
  const port = Number(n.libp2p.getMultiaddrs()[0].getComponents().find((c) => c.name === 'tcp')?.value);
  return { node: n, lines, tcp: { host: '127.0.0.1', port } };
}

/** Connects from `from` (any 127.x address is loopback), sends `data`, and resolves once the node closed the socket. */
function sendGarbage(to: { host: string; port: number }, data: Uint8Array, from = '127.0.0.1'): Promise<'closed'> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ ...to, localAddress: from }, () => s.write(data));
    s.on('error', () => {}); // a reset is how the node closes it; 'close' follows
    s.on('data', () => {}); // the node may answer (pnet nonce, multistream "na") before it closes
    s.setTimeout(20_000, () => {
      s.destroy();
      reject(new Error(`node did not close a garbage connection from ${from} within 20 s`));
    });
    s.on('close', () => resolve('closed'));
  });
}

const httpRequest = (i: number) => new TextEncoder().encode(`GET /v2/${i} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n`);
const warnings = (lines: LogLine[], ip: string) => lines.filter((l) => l.level === WARN && l.component === 'p2p.inbound' && l.remote?.startsWith(`${ip}:`));

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function acceptsPeer(target: MeshNode, swarmKey?: Uint8Array): Promise<void> {
  const peer = await node(swarmKey, target.libp2p.getMultiaddrs().map(String));
  await until('a real peer connected', () => target.libp2p.getConnections(peer.node.libp2p.peerId).length > 0);
}

describe.each([
  ['without a swarm key', undefined],
  ['with a swarm key', parseSwarmKey(generateSwarmKey())],
])('a node %s', (_name, swarmKey) => {
  test('closes garbage connections and logs them, rate-limited, with the remote address and the reason', async () => {
    const { node: n, lines, tcp } = await node(swarmKey);
    const garbage = [
      ...Array.from({ length: 200 }, () => randomBytes(2048)),
      ...Array.from({ length: 20 }, (_, i) => httpRequest(i)),
    ];
    expect(await Promise.all(garbage.map((g) => sendGarbage(tcp, g)))).toHaveLength(220);
    await until('a warn line naming 127.0.0.1', () => warnings(lines, '127.0.0.1').length > 0);
    const line = warnings(lines, '127.0.0.1')[0];
    expect(line.reason).toMatch(/\w/);
    expect(line.remote).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(warnings(lines, '127.0.0.1')).toHaveLength(1); // one line per IP per minute for 220 connections

    // A flood from 100 addresses is capped as a whole.
    await Promise.all(Array.from({ length: 100 }, (_, i) => sendGarbage(tcp, randomBytes(2048), `127.0.1.${i + 1}`)));
    await new Promise((r) => setTimeout(r, 200));
    const inbound = lines.filter((l) => l.component === 'p2p.inbound');
    expect(inbound.length).toBeGreaterThan(1);
    expect(inbound.length).toBeLessThanOrEqual(20);

    await acceptsPeer(n, swarmKey);
    expect(rejections).toEqual([]);
  });
});

describe('a node with a swarm key', () => {
  test('lets members in while a non-member holds connections open without a handshake, from one address', async () => {
    const key = parseSwarmKey(generateSwarmKey());
    const { node: n, tcp } = await node(key);
    // More idle connections than libp2p lets wait for their handshake, each opened again as soon as it is closed.
    const sockets = new Set<net.Socket>();
    let holding = true;
    const hold = () => {
      const s = net.connect({ ...tcp, localAddress: '127.0.0.2' });
      sockets.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        sockets.delete(s);
        if (holding) setTimeout(hold, 20);
      });
    };
    try {
      for (let i = 0; i < 300; i++) hold();
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      await acceptsPeer(n, key);
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      holding = false;
      for (const s of sockets) s.destroy();
    }
    expect(rejections).toEqual([]);
  });

  test('logs a peer with another swarm key the same way, and still accepts members', async () => {
    const key = parseSwarmKey(generateSwarmKey());
    const { node: n, lines } = await node(key);
    const stranger = await node(parseSwarmKey(generateSwarmKey()), n.libp2p.getMultiaddrs().map(String));
    await until('a warn line naming 127.0.0.1', () => warnings(lines, '127.0.0.1').length > 0);
    expect(warnings(lines, '127.0.0.1')[0]).toMatchObject({ reason: expect.stringMatching(/\w/), hint: expect.stringMatching(/swarm key/) });
    expect(n.libp2p.getConnections(stranger.node.libp2p.peerId)).toEqual([]);
    await acceptsPeer(n, key);
    expect(rejections).toEqual([]);
  });
});
