import Fastify from 'fastify';
import { afterEach, expect, it } from 'vitest';
import { registerMetrics } from './metrics.js';

const app = Fastify();
afterEach(async () => app.close());

it('counts the members this node is connected to apart from those it only heard of', async () => {
  const peers = [
    { id: 'a', addrs: [] }, { id: 'b', addrs: [] }, { id: 'c', addrs: [], rttMs: 2 },
    { id: 'd', addrs: [], connected: false as const }, { id: 'e', addrs: [], connected: false as const },
  ];
  registerMetrics(app, { router: { peers: () => peers }, holdings: { size: 0 }, disk: async () => undefined });
  const text = (await app.inject({ method: 'GET', url: '/metrics' })).body;
  expect(text).toMatch(/^layermesh_connected_peers 3$/m);
  expect(text).toMatch(/^layermesh_known_members 5$/m);
});
