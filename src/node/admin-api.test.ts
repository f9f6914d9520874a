// The admin API's survey of members' inventories: shared by the requests of a second, whoever loops on them.
import Fastify from 'fastify';
import { afterAll, expect, test } from 'vitest';
import type { Inventory } from '../dht/membership.js';
import { MemoryStore } from '../store/memory-store.js';
import { registerAdminApi, type AdminDeps } from './admin-api.js';

const app = Fastify();
afterAll(() => app.close());

test('polling /peers and /images?mesh surveys the members once a second, not once a request', async () => {
  let surveys = 0;
  let keys = 1;
  const deps: AdminDeps = {
    store: new MemoryStore(),
    router: { id: 'self', async *findProviders() {} },
    membership: {
      peers: () => [{ id: 'peer-b', addrs: [], info: { name: 'b', labels: {}, dataPlanePort: 1 } }],
      inventories: async () => {
        surveys++;
        await new Promise((r) => setTimeout(r, 50)); // a member answering: requests meanwhile share this survey
        return new Map<string, Inventory>([['peer-b', { name: 'b', keys, images: [] }]]);
      },
    },
    holdings: { size: 0 } as AdminDeps['holdings'],
    ownInventory: async () => ({ name: 'self', keys: 0, images: [] }),
    node: { name: 'self', labels: {}, swarmKey: true },
    registryUrl: () => '',
    p2pAddrs: () => [],
  };
  registerAdminApi(app, deps);
  const get = async (url: string) => (await app.inject({ url })).json();

  const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => get(i % 2 ? '/_mesh/v1/peers' : '/_mesh/v1/images?mesh=1')));
  for (let i = 0; i < 3; i++) await get('/_mesh/v1/peers'); // within the second after that survey
  expect(surveys).toBe(1);
  expect(answers[1]).toEqual([expect.objectContaining({ id: 'peer-b', keys: 1 })]);

  keys = 2;
  await new Promise((r) => setTimeout(r, 1_100));
  expect(await get('/_mesh/v1/peers')).toEqual([expect.objectContaining({ id: 'peer-b', keys: 2 })]);
  expect(surveys).toBe(2);
});
