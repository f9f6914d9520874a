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

it('shows no disk figures, rather than the last ones, while the store cannot be surveyed', async () => {
  const totals = [{ total: 30, pinned: 0, pushed: 10, pulled: 0, replicated: 20, cache: 0 }, undefined];
  const own = Fastify();
  registerMetrics(own, { router: { peers: () => [] }, holdings: { size: 0 }, disk: async () => totals.shift() });
  expect((await own.inject({ method: 'GET', url: '/metrics' })).body).toMatch(/^layermesh_disk_bytes\{category="replicated"\} 20$/m);
  expect((await own.inject({ method: 'GET', url: '/metrics' })).body).not.toMatch(/^layermesh_disk_bytes\{/m);
  await own.close();
});
