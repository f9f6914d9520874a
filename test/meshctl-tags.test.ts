// meshctl who-has and ls --mesh for a name held under different digests: the daemon's admin API on fake
// membership (this node and two peers, each with its inventory), and the real meshctl against it.
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Inventory } from '../src/dht/membership.js';
import { registerAdminApi, type AdminDeps } from '../src/node/admin-api.js';
import { MemoryStore } from '../src/store/memory-store.js';
import { run } from './helpers/run.js';

const MESHCTL = new URL('../dist/src/cli/meshctl.js', import.meta.url).pathname;
const NAME = 'docker.io/library/same:1';
const [OLD, NEW] = [`sha256:${'a'.repeat(64)}`, `sha256:${'b'.repeat(64)}`];
const now = Date.now();
const pushOld = { clock: now - 90_000, node: 'peer-self' };
const pushNew = { clock: now - 5_000, node: 'peer-b' };

const inventory = (name: string, digest: string, push: typeof pushOld): Inventory => ({ name, keys: 3, images: [{ name: NAME, digest, push }] });
const inventories = new Map([['peer-b', inventory('node-b', NEW, pushNew)], ['peer-c', inventory('node-c', NEW, pushNew)]]);

describe('meshctl on a name held under two digests', () => {
  const app = Fastify();
  let url = '';

  beforeAll(async () => {
    const deps: AdminDeps = {
      store: new MemoryStore(),
      router: {
        id: 'peer-self',
        async *findProviders() {
          for (const id of ['peer-self', 'peer-b', 'peer-c']) yield { id, addrs: [`/ip4/10.0.0.1/tcp/4001/p2p/${id}`] };
        },
      },
      membership: {
        peers: () => [...inventories].map(([id, inv]) => ({ id, addrs: [], rttMs: 1, info: { name: inv.name, labels: {}, dataPlanePort: 1 } })),
        inventories: async () => inventories,
      },
      holdings: { size: 3 } as AdminDeps['holdings'],
      ownInventory: async () => inventory('node-self', OLD, pushOld),
      node: { name: 'node-self', labels: {}, swarmKey: true },
      registryUrl: () => url,
      p2pAddrs: () => [],
    };
    registerAdminApi(app, deps);
    url = await app.listen({ host: '127.0.0.1', port: 0 });
  });
  afterAll(() => app.close());

  const meshctl = (args: string[]) => run(process.execPath, [MESHCTL, '--node', url, ...args]);

  it('who-has shows the digest each holder names the image after, and the push it follows', async () => {
    const answer = JSON.parse(await meshctl(['--json', 'who-has', NAME]));
    expect(answer.providers).toEqual([
      expect.objectContaining({ id: 'peer-self', self: true, digest: OLD, push: pushOld }),
      expect.objectContaining({ id: 'peer-b', name: 'node-b', digest: NEW, push: pushNew }),
      expect.objectContaining({ id: 'peer-c', name: 'node-c', digest: NEW, push: pushNew }),
    ]);
    const human = await meshctl(['who-has', NAME]);
    // The stamps were made when this file loaded; a loaded machine may take seconds to get here.
    const ago = (stamp: number) => { const s = Math.floor((Date.now() - stamp) / 1000); return `(${s - 1}|${s}|${s + 1})s ago`; };
    expect(human).toMatch(/PEER\s+NAME\s+RTT\s+DIGEST\s+PUSHED\s+ADDRESSES/);
    expect(human).toMatch(new RegExp(`peer-self \\(this node\\)\\s+node-self\\s+0\\.0 ms\\s+${OLD}\\s+${ago(pushOld.clock)} to node-self`));
    expect(human).toMatch(new RegExp(`peer-b\\s+node-b\\s+1\\.0 ms\\s+${NEW}\\s+${ago(pushNew.clock)} to node-b`));
  });

  it('who-has of a digest lists holders without image columns', async () => {
    const human = await meshctl(['who-has', OLD]);
    expect(human).toMatch(/^PEER\s+NAME\s+RTT\s+ADDRESSES$/m);
  });

  it('ls --mesh flags the conflict: which digest is the newest push, which the older', async () => {
    const rows = JSON.parse(await meshctl(['--json', 'ls', '--mesh']));
    expect(rows).toEqual(expect.arrayContaining([
      { name: NAME, digest: OLD, nodes: [{ id: 'peer-self', name: 'node-self' }], fetching: [], push: pushOld, conflict: 'older' },
      { name: NAME, digest: NEW, nodes: [{ id: 'peer-b', name: 'node-b' }, { id: 'peer-c', name: 'node-c' }], fetching: [], push: pushNew, conflict: 'newest' },
    ]));
    const human = await meshctl(['ls', '--mesh']);
    expect(human).toMatch(new RegExp(`same:1\\s+${OLD}\\s+node-self\\s+-\\s+CONFLICT: older push`));
    expect(human).toMatch(new RegExp(`same:1\\s+${NEW}\\s+node-b,node-c\\s+-\\s+CONFLICT: newest push`));
  });

  it('ls --mesh shows no conflict once every holder has the newest push', async () => {
    inventories.set('peer-b', inventory('node-b', OLD, pushOld));
    inventories.set('peer-c', inventory('node-c', OLD, pushOld));
    const rows = JSON.parse(await meshctl(['--json', 'ls', '--mesh']));
    expect(rows).toEqual([{ name: NAME, digest: OLD, nodes: expect.any(Array), fetching: [], push: pushOld }]);
    expect(await meshctl(['ls', '--mesh'])).toMatch(/node-self,node-b,node-c\s+-\s+-$/m);
  });
});
