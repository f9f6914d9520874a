import '../polyfill.js';
import { afterAll, expect, test } from 'vitest';
import { askJson, serveJson } from './json-protocol.js';
import type { MeshNode } from './libp2p-node.js';
import { meshNodes } from '../../test/helpers/mesh-nodes.js';

const PROTOCOL = '/layermesh/test-json/1.0.0';
const nodes = meshNodes();
afterAll(() => nodes.stopAll());
const node = (bootstrap?: string[]) => nodes.start(bootstrap);

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

test('an answer longer than asked for is refused at its limit, not read to the deadline', async () => {
  const ENDLESS = '/layermesh/test-endless/1.0.0';
  const server = await node();
  await server.libp2p.handle(ENDLESS, async (stream) => {
    const chunk = new Uint8Array(64 << 10).fill(0x20);
    // A member that answers for ever (spaces: valid JSON padding, were it ever to end).
    while (stream.status === 'open' && stream.writeStatus === 'writable') {
      if (!stream.send(chunk)) await new Promise((r) => stream.addEventListener('drain', r, { once: true }));
    }
  });
  const client = await node(server.libp2p.getMultiaddrs().map(String));
  while (client.libp2p.getConnections(server.libp2p.peerId).length === 0) await new Promise((r) => setTimeout(r, 20));
  const started = Date.now();
  const err = await askJson(client.libp2p, server.libp2p.peerId, ENDLESS, { signal: AbortSignal.timeout(5_000), maxBytes: 256 << 10 }).catch((e: Error) => e);
  expect((err as Error).message).toMatch(/answer is larger than 262144 bytes/);
  expect(Date.now() - started).toBeLessThan(2_000);
});
