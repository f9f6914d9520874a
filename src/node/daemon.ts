// meshd's lifecycle: open the store, serve the peer data plane, join the mesh, serve the registry; stop cleanly.
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Store } from '../containerd/store.js';
import { readSwarmKey } from '../dht/swarm-key.js';
import { Mirror } from '../mirror/mirror.js';
import { peerKey } from '../mirror/peer-auth.js';
import { createPeerServer } from '../mirror/peer-server.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { registerAdminApi } from './admin-api.js';
import { splitHostPort, type Config } from './config.js';
import { joinMesh, type Mesh } from './mesh.js';
import { openStore } from './open-store.js';

/** Manifests larger than this are refused (the spec asks registries to take at least 4 MB). */
const MAX_MANIFEST_BYTES = 4 << 20;
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

/** Listens and returns the bound URL (port 0 picks a free port). */
async function listen(app: Server, addr: string, what: string): Promise<{ url: string; port: number }> {
  const { host, port } = splitHostPort(addr);
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
    const key = peerKey(swarmKey);
    const store = await openStore(config, log);
    closers.push(() => store.close());

    const peerServer = createPeerServer({ store, key, log: log.child({ component: 'peer-server' }) });
    const peer = await listen(peerServer, config.peerAddr, 'peer data plane');
    closers.push(() => peerServer.close());

    const mesh = await joinMesh(config, store, log, { swarmKey, dataPlanePort: peer.port });
    closers.push(() => mesh.stop());

    const mirror = new Mirror({
      store,
      findPeers: (k, signal) => mesh.dataPlanes(k, signal),
      key,
      log: log.child({ component: 'mirror' }),
      lookupTimeoutMs: config.mirrorTimeoutMs,
      stallTimeoutMs: PEER_STALL_MS,
      resolveTags: config.mirrorTags,
    });
    const uploads = new UploadSessions(store, { maxBlobBytes: config.maxUploadSize, idleTimeoutMs: config.uploadTimeoutMs }, log.child({ component: 'uploads' }));
    // Uploads not finished when the registry has closed are aborted: nothing partial survives the daemon.
    closers.push(() => uploads.close());
    const registry = createRegistry({
      store,
      uploads,
      log: log.child({ component: 'registry' }),
      maxManifestBytes: MAX_MANIFEST_BYTES,
      token: config.registryToken,
      mirror,
      mirrorRegistries: config.mirrorRegistries,
      onPushed: (image, digest) => {
        mesh.router.publish({ type: 'image-pushed', image, digest, node: mesh.router.id })
          .catch((err) => log.warn({ err, image }, 'could not gossip the push'));
      },
    });
    let registryUrl = '';
    registerAdminApi(registry, {
      store,
      router: mesh.router,
      announcer: mesh.announcer,
      inventory: mesh,
      node: { name: config.nodeName, labels: config.labels, swarmKey: swarmKey !== undefined },
      registryUrl: () => registryUrl,
      p2pAddrs: mesh.addrs,
    });
    registryUrl = (await listen(registry, config.registryAddr, 'registry')).url;
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
