import '../polyfill.js';
import { afterAll, expect, test } from 'vitest';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createMeshNode, type MeshNode } from './libp2p-node.js';
import { askJson, serveJson } from './json-protocol.js';

const PROTOCOL = '/layermesh/test-json/1.0.0';
const nodes: MeshNode[] = [];
afterAll(() => Promise.all(nodes.map((n) => n.stop())));

async function node(bootstrap: string[] = []): Promise<MeshNode> {
  const n = await createMeshNode({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap,
    mdns: false,
    logger: pino({ level: 'silent' }),
    recordTtlMs: 60_000,
    bootstrapIntervalMs: 100,
  });
  nodes.push(n);
  return n;
}

const open = (n: MeshNode): number =>
  n.libp2p.getConnections().flatMap((c) => c.streams).filter((s) => s.protocol === PROTOCOL).length;

test('an exchange leaves no stream open on either side', async () => {
  const server = await node();
  await serveJson(server.libp2p, PROTOCOL, () => ({ hello: 'world' }));
  const client = await node(server.libp2p.getMultiaddrs().map(String));
  while (client.libp2p.getConnections(server.libp2p.peerId).length === 0) await new Promise((r) => setTimeout(r, 20));
  for (let i = 0; i < 5; i++) {
    expect(await askJson(client.libp2p, server.libp2p.peerId, PROTOCOL, { signal: AbortSignal.timeout(5_000), maxBytes: 1024 })).toEqual({ hello: 'world' });
  }
  const deadline = Date.now() + 2_000;
  while ((open(client) > 0 || open(server) > 0) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  expect({ client: open(client), server: open(server) }).toEqual({ client: 0, server: 0 });
});
