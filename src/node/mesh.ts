// This node's place in the mesh: identity, libp2p node, router, and the announcer that feeds it.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { loadOrCreateIdentity } from '../dht/identity.js';
import { createMeshNode } from '../dht/libp2p-node.js';
import { Libp2pRouter } from '../dht/libp2p-router.js';
import { Announcer } from './announcer.js';
import type { Config } from './config.js';
import type { ImageFetch } from '../api/admin-types.js';
import { gatherInventories, localImages, serveInventory, type Inventory } from './inventory.js';
import type { PeerEndpoint } from '../mirror/peer-client.js';

export interface Mesh {
  router: Libp2pRouter;
  announcer: Announcer;
  addrs(): string[];
  /** This node's inventory, and those of the connected members by peer id. */
  ownInventory(): Promise<Inventory>;
  inventories(): Promise<Map<string, Inventory>>;
  /** Starts answering members' inventory requests, with the images being copied here as `fetching` reports them. */
  serveInventory(fetching: () => Promise<ImageFetch[]>): Promise<void>;
  /** Peers (not this node) holding a key, as data plane endpoints, with their round-trip times. */
  dataPlanes(key: string, signal: AbortSignal): Promise<PeerEndpoint[]>;
  /** A connected member's data plane. */
  endpointOf(peerId: string): PeerEndpoint | undefined;
  stop(): Promise<void>;
}

const HOLDER_GRACE_MS = 50;

/** The IP of a multiaddr (`/ip4/10.0.0.2/tcp/4001/...`), bracketed for URLs when v6. */
function ipOf(multiaddr: string): string | undefined {
  const m = /^\/ip([46])\/([^/]+)\//.exec(multiaddr);
  return m ? (m[1] === '6' ? `[${m[2]}]` : m[2]) : undefined;
}

export interface JoinOptions {
  swarmKey?: Uint8Array;
  dataPlanePort: number;
}

export async function joinMesh(config: Config, store: Store, log: Logger, opts: JoinOptions): Promise<Mesh> {
  const privateKey = await loadOrCreateIdentity(config.dataDir);
  const { swarmKey } = opts;
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
    nodeInfo: { name: config.nodeName, labels: config.labels, dataPlanePort: opts.dataPlanePort, replicate: config.replicate.text },
    logger: log.child({ component: 'router' }),
  });
  router.onEvent((event, from) => log.info({ event, from }, 'mesh event'));
  const announcer = new Announcer(store, router, log.child({ component: 'announcer' }), config.reconcileIntervalMs);
  await announcer.start();
  let fetching = async (): Promise<ImageFetch[]> => [];
  const ownInventory = async (): Promise<Inventory> => ({
    name: config.nodeName,
    keys: announcer.size,
    images: await localImages(store),
    fetching: await fetching(),
  });
  const endpointOf = (id: string): PeerEndpoint | undefined => {
    const peer = router.peers().find((p) => p.id === id);
    if (!peer?.info?.dataPlanePort) return undefined;
    // The address this node reaches the peer at (its connection), not whatever it listens on.
    const conn = node.libp2p.getConnections().find((c) => c.remotePeer.toString() === id);
    const ip = ipOf(conn?.remoteAddr.toString() ?? '') ?? peer.addrs.map(ipOf).find(Boolean);
    return ip ? { id, url: `http://${ip}:${peer.info.dataPlanePort}`, rttMs: peer.rttMs } : undefined;
  };
  return {
    router,
    announcer,
    addrs: () => node.libp2p.getMultiaddrs().map(String),
    ownInventory,
    inventories: () => gatherInventories(node.libp2p, log.child({ component: 'inventory' })),
    serveInventory: (progress) => {
      fetching = progress;
      return serveInventory(node.libp2p, ownInventory);
    },
    endpointOf,
    dataPlanes: async (key, signal) => {
      const found: PeerEndpoint[] = [];
      // Once one holder is known, others found within a moment are welcome; a full DHT walk is not worth the wait.
      const enough = new AbortController();
      let grace: NodeJS.Timeout | undefined;
      for await (const provider of router.findProviders(key, AbortSignal.any([signal, enough.signal]))) {
        if (provider.id === router.id || found.some((f) => f.id === provider.id)) continue;
        const endpoint = endpointOf(provider.id);
        if (!endpoint) continue;
        found.push(endpoint);
        grace ??= setTimeout(() => enough.abort(), HOLDER_GRACE_MS);
      }
      clearTimeout(grace);
      return found;
    },
    stop: async () => {
      announcer.stop();
      await router.stop();
    },
  };
}
