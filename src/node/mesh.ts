// This node's place in the mesh: identity, libp2p node, router, and the holdings that feeds it.
import type { PrivateKey } from '@libp2p/interface';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { createMeshNode } from '../dht/libp2p-node.js';
import { Libp2pRouter } from '../dht/libp2p-router.js';
import { Holdings } from './holdings.js';
import type { Config } from './config.js';
import { splitHostPort } from './config-values.js';
import { isLoopback as isLoopbackAddr } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { isLoopback } from '../registry/access.js';
import type { DiskTotals, ImageEntry, ImageFetch } from '../api/admin-types.js';
import { libp2pMembership } from '../dht/libp2p-membership.js';
import type { Inventory, Membership } from '../dht/membership.js';
import { PUSH_REPLICATE_LABEL, pushOf } from '../oci/tag-push.js';

export interface Mesh {
  router: Libp2pRouter;
  membership: Membership;
  holdings: Holdings;
  addrs(): string[];
  /** This node's inventory, as members see it. */
  ownInventory(): Promise<Inventory>;
  /**
   * Starts answering members' inventory requests, with the images being copied here as `fetching` reports
   * them, and the bytes held as `disk` does.
   */
  serveInventory(fetching: () => Promise<ImageFetch[]>, disk?: () => Promise<DiskTotals | undefined>): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Tagged images of the store (records by digest only keep untagged manifests alive), with the push each follows,
 * and the policy of pushes to this node (`self`) that carried one.
 */
async function localImages(store: Store, self: string): Promise<ImageEntry[]> {
  return (await store.images.list()).filter((i) => !i.name.includes('@')).map((i) => {
    const push = pushOf(i.labels);
    const replicate = push?.node === self ? i.labels[PUSH_REPLICATE_LABEL] : undefined;
    return { name: i.name, digest: i.target.digest, ...(push && { push }), ...(replicate !== undefined && { replicate }) };
  });
}

export interface JoinOptions {
  /** This node's libp2p identity (its peer id names it to the members). */
  privateKey: PrivateKey;
  swarmKey?: Uint8Array;
  dataPlanePort: number;
}

function onLoopbackOnly(config: Config): boolean {
  return config.p2pListen.every((address) => isLoopbackAddr(multiaddr(address))) && isLoopback(splitHostPort(config.peerAddr).host);
}

export async function joinMesh(config: Config, store: Store, log: Logger, opts: JoinOptions): Promise<Mesh> {
  const { swarmKey, privateKey } = opts;
  if (!swarmKey && onLoopbackOnly(config)) {
    log.warn('no --swarm-key: the mesh listens on loopback only, so no other host can join this node; give every node of '
      + 'the fleet the same key (`meshctl swarm-key generate`), or name --p2p-listen and --peer-addr for an open mesh');
  } else if (!swarmKey) {
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
  let router: Libp2pRouter | undefined;
  let holdings: Holdings;
  try {
    router = await Libp2pRouter.create({
      node,
      nodeInfo: { name: config.nodeName, labels: config.labels, dataPlanePort: opts.dataPlanePort, replicate: config.replicate.text },
      logger: log.child({ component: 'router' }),
    });
    // Without the blobs a push carries (up to 48 KiB of manifests and configs, Env included) nor its plan's takers.
    router.onEvent((event, from) => {
      if (event.type !== 'image-pushed') return void log.info({ event, from }, 'mesh event');
      const { inline: _inline, takers, ...push } = event;
      log.info({ event: push, from, takers: takers?.length }, 'mesh event');
    });
    holdings = new Holdings(store, router, log.child({ component: 'holdings' }), config.reconcileIntervalMs);
    await holdings.start();
  } catch (err) {
    // libp2p listens already: left running, it would keep a daemon that cannot start from exiting.
    await (router ?? node).stop();
    throw err;
  }
  const membership = libp2pMembership(node.libp2p, router, log.child({ component: 'membership' }), config.peerPlaintext);
  let fetching = async (): Promise<ImageFetch[]> => [];
  let disk = async (): Promise<DiskTotals | undefined> => undefined;
  const ownInventory = async (): Promise<Inventory> => ({
    name: config.nodeName,
    keys: holdings.size,
    images: await localImages(store, router.id),
    fetching: await fetching(),
    disk: await disk(),
  });
  return {
    router,
    membership,
    holdings,
    addrs: () => node.libp2p.getMultiaddrs().map(String),
    ownInventory,
    serveInventory: (progress, totals) => {
      fetching = progress;
      if (totals) disk = totals;
      return membership.serveInventory(ownInventory);
    },
    stop: async () => {
      holdings.stop();
      await router.stop();
    },
  };
}
