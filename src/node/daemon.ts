// meshd's lifecycle: open the store, serve the peer data plane, join the mesh, serve the registry; stop cleanly.
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import { loadOrCreateIdentity } from '../dht/identity.js';
import type { Store } from '../store/store.js';
import { readSwarmKey } from '../dht/swarm-key.js';
import { Mirror } from '../mirror/mirror.js';
import { mirrorStore } from '../mirror/mirror-store.js';
import { peerKey } from '../mirror/peer-auth.js';
import { createPeerServer } from '../mirror/peer-server.js';
import { Spools } from '../mirror/spools.js';
import { Upstream } from '../mirror/upstream.js';
import { readDockerConfig } from '../mirror/upstream-auth.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { registerAdminApi } from './admin-api.js';
import { splitHostPort, type Config } from './config.js';
import { joinMesh, type Mesh } from './mesh.js';
import { openStore } from './open-store.js';
import { pushGossip } from './push-event.js';
import { NewestPushes } from './newest-pushes.js';
import { PushFollower } from './push-follower.js';
import { Replicator } from './replicator.js';
import { TagRecords } from './tag-records.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';

/** A peer that sends no byte for this long is left for the next holder. */
const PEER_STALL_MS = 10_000;

export interface Daemon {
  store: Store;
  mesh: Mesh;
  registryUrl: string;
  stop(): Promise<void>;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

type Server = { listen(o: { host: string; port: number }): Promise<string>; server: import('node:http').Server };

/**
 * Listens and returns the bound URL (port 0 picks a free port). Past `maxConnections` open connections new
 * ones are refused, so that no client can use up the descriptors meshd needs for its store and its peers.
 */
async function listen(app: Server, addr: string, what: string, maxConnections: number): Promise<{ url: string; port: number }> {
  const { host, port } = splitHostPort(addr);
  app.server.maxConnections = maxConnections;
  try {
    await app.listen({ host, port });
  } catch (err) {
    throw new Error(`${what} cannot listen on ${addr}: ${(err as Error).message}`, { cause: err });
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return { url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}`, port: bound };
}

export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  const { host } = splitHostPort(config.registryAddr);
  if (!isLoopback(host) && !config.registryToken) {
    throw new Error(`--registry-addr ${config.registryAddr} is not loopback: set --registry-token so that only you can push`);
  }
  // What has started, stopped in reverse order at shutdown or when a later step fails.
  const closers: (() => Promise<void>)[] = [];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close();
  };
  try {
    await mkdir(config.dataDir, { recursive: true });
    const swarmKey = config.swarmKeyFile ? await readSwarmKey(config.swarmKeyFile) : undefined;
    const membershipKey = peerKey(swarmKey);
    // Read first: a wrong credentials file should stop the daemon before anything starts listening.
    const upstream = config.upstream
      ? new Upstream({
          endpoints: config.upstreamEndpoints,
          credentials: config.upstreamAuthFile ? await readDockerConfig(config.upstreamAuthFile) : undefined,
          timeoutMs: config.upstreamTimeoutMs,
          log: log.child({ component: 'upstream' }),
        })
      : undefined;
    const store = await openStore(config, log);
    closers.push(() => store.close());

    const privateKey = await loadOrCreateIdentity(config.dataDir);
    const spools = await Spools.open(join(config.dataDir, 'spool'));
    const peerServer = createPeerServer({ store, spools, membershipKey, selfId: peerIdFromPrivateKey(privateKey).toString(), log: log.child({ component: 'peer-server' }) });
    const peer = await listen(peerServer, config.peerAddr, 'peer data plane', config.maxConnections);
    closers.push(() => peerServer.close());

    const mesh = await joinMesh(config, store, log, { swarmKey, privateKey, dataPlanePort: peer.port });
    closers.push(() => mesh.stop());

    const mirror = new Mirror({
      store,
      spools,
      membershipKey,
      log: log.child({ component: 'mirror' }),
      lookupTimeoutMs: config.mirrorTimeoutMs,
      stallTimeoutMs: PEER_STALL_MS,
      resolveTags: config.mirrorTags,
      members: mesh.membership,
      partialHolder: (digest) => mesh.holdings.announceArriving(digest),
      upstream,
    });
    // The newest push of each name known here: stamps in the image records, then gossip.
    const pushes = new NewestPushes(mesh.router.id);
    await pushes.load(store);
    const replicator = new Replicator({
      store,
      records: new TagRecords(store, pushes, log.child({ component: 'tags' })),
      membership: mesh.membership,
      mirror,
      log: log.child({ component: 'replicator' }),
    });
    const follower = new PushFollower({
      store,
      pushes,
      replicator,
      membership: mesh.membership,
      policy: config.replicate,
      self: { name: config.nodeName, labels: config.labels },
      log: log.child({ component: 'replicator' }),
    });
    mesh.router.onEvent((event) => follower.onEvent(event));
    // Members see the replicator's progress in this node's inventory.
    await mesh.serveInventory(() => replicator.progress());
    const uploads = new UploadSessions(store, {
      maxBlobBytes: config.maxUploadSize, idleTimeoutMs: config.uploadTimeoutMs,
      maxSessions: config.maxUploads, maxSessionsPerClient: config.maxUploadsPerClient,
    }, log.child({ component: 'uploads' }));
    // Uploads not finished when the registry has closed are aborted: nothing partial survives the daemon.
    closers.push(() => uploads.close());
    const registry = createRegistry({
      // The registry reads through the mirror: what this host lacks comes from the mesh (and the upstream).
      store: mirrorStore(store, mirror, { registries: config.mirrorRegistries }),
      uploads,
      log: log.child({ component: 'registry' }),
      maxManifestBytes: MAX_MANIFEST_BYTES,
      token: config.registryToken,
      pushes: pushGossip(store, mesh.router, pushes, log),
    });
    let registryUrl = '';
    registerAdminApi(registry, {
      store,
      router: mesh.router,
      membership: mesh.membership,
      holdings: mesh.holdings,
      ownInventory: () => mesh.ownInventory(),
      node: { name: config.nodeName, labels: config.labels, swarmKey: swarmKey !== undefined },
      registryUrl: () => registryUrl,
      p2pAddrs: mesh.addrs,
    });
    registryUrl = (await listen(registry, config.registryAddr, 'registry', config.maxConnections)).url;
    closers.push(async () => {
      const cut = setTimeout(() => registry.server.closeAllConnections(), config.shutdownGraceMs);
      await registry.close();
      clearTimeout(cut);
    });
    log.info({ registry: registryUrl, peer: peer.url, store: store.kind, peerId: mesh.router.id, p2p: mesh.addrs() }, 'meshd ready');

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        log.info('meshd stopping');
        await closeAll();
        log.info('meshd stopped');
      })());
    return { store, mesh, registryUrl, stop };
  } catch (err) {
    await closeAll();
    throw err;
  }
}
