// This node's place in the mesh: identity, libp2p node, router, and the announcer that feeds it.
import type { Logger } from 'pino';
import type { Store } from '../containerd/store.js';
import { loadOrCreateIdentity } from '../dht/identity.js';
import { createMeshNode } from '../dht/libp2p-node.js';
import { Libp2pRouter } from '../dht/libp2p-router.js';
import { readSwarmKey } from '../dht/swarm-key.js';
import { Announcer } from './announcer.js';
import type { Config } from './config.js';
import { gatherInventories, localImages, serveInventory, type Inventory } from './inventory.js';

export interface Mesh {
  router: Libp2pRouter;
  announcer: Announcer;
  addrs(): string[];
  /** This node's inventory, and those of the connected members by peer id. */
  ownInventory(): Promise<Inventory>;
  inventories(): Promise<Map<string, Inventory>>;
  stop(): Promise<void>;
}

export async function joinMesh(config: Config, store: Store, log: Logger): Promise<Mesh> {
  const privateKey = await loadOrCreateIdentity(config.dataDir);
  const swarmKey = config.swarmKeyFile ? await readSwarmKey(config.swarmKeyFile) : undefined;
  if (!swarmKey) {
    log.warn('no --swarm-key: ANYONE who can reach the p2p port can join this mesh and read what it announces; '
      + 'generate one with `meshctl swarm-key generate` and give it to every node');
  }
  const node = await createMeshNode({
    privateKey,
    listen: config.p2pListen,
    bootstrap: config.bootstrap,
    mdns: config.mdns,
    swarmKey,
    logger: log.child({ component: 'p2p' }),
    recordTtlMs: config.recordTtlMs,
  });
  const router = await Libp2pRouter.create({
    node,
    nodeInfo: { name: config.nodeName, labels: config.labels, dataPlanePort: 0 },
    logger: log.child({ component: 'router' }),
  });
  router.onEvent((event, from) => log.info({ event, from }, 'mesh event'));
  const announcer = new Announcer(store, router, log.child({ component: 'announcer' }), config.reconcileIntervalMs);
  await announcer.start();
  const ownInventory = async (): Promise<Inventory> => ({ name: config.nodeName, keys: announcer.size, images: await localImages(store) });
  await serveInventory(node.libp2p, ownInventory);
  return {
    router,
    announcer,
    addrs: () => node.libp2p.getMultiaddrs().map(String),
    ownInventory,
    inventories: () => gatherInventories(node.libp2p, log.child({ component: 'inventory' })),
    stop: async () => {
      announcer.stop();
      await router.stop();
    },
  };
}
