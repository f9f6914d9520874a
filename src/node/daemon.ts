// meshd's lifecycle: open the store, serve the registry, stop cleanly.
import { mkdir } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Store } from '../containerd/store.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { registerAdminApi } from './admin-api.js';
import { splitHostPort, type Config } from './config.js';
import { joinMesh, type Mesh } from './mesh.js';
import { openStore } from './open-store.js';

/** Manifests larger than this are refused (the spec asks registries to take at least 4 MB). */
const MAX_MANIFEST_BYTES = 4 << 20;

export interface Daemon {
  store: Store;
  mesh: Mesh;
  registryUrl: string;
  stop(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  const { host, port } = splitHostPort(config.registryAddr);
  if (!isLoopback(host) && !config.registryToken) {
    throw new Error(`--registry-addr ${config.registryAddr} is not loopback: set --registry-token so that only you can push`);
  }
  await mkdir(config.dataDir, { recursive: true });
  const store = await openStore(config, log);
  const mesh = await joinMesh(config, store, log).catch(async (err) => {
    await store.close();
    throw err;
  });
  const uploads = new UploadSessions(store, { maxBlobBytes: config.maxUploadSize, idleTimeoutMs: config.uploadTimeoutMs }, log.child({ component: 'uploads' }));
  const registry = createRegistry({
    store,
    uploads,
    log: log.child({ component: 'registry' }),
    maxManifestBytes: MAX_MANIFEST_BYTES,
    token: config.registryToken,
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
    node: { name: config.nodeName, labels: config.labels, swarmKey: config.swarmKeyFile !== undefined },
    registryUrl: () => registryUrl,
    p2pAddrs: mesh.addrs,
  });
  try {
    await registry.listen({ host, port });
  } catch (err) {
    await uploads.close();
    await mesh.stop();
    await store.close();
    throw new Error(`registry cannot listen on ${config.registryAddr}: ${(err as Error).message}`, { cause: err });
  }
  const address = registry.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  registryUrl = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info({ registry: registryUrl, store: store.kind, peerId: mesh.router.id, p2p: mesh.addrs() }, 'meshd ready');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('meshd stopping');
      const cut = setTimeout(() => registry.server.closeAllConnections(), config.shutdownGraceMs);
      await registry.close();
      clearTimeout(cut);
      // Uploads not finished by now are aborted: nothing partial survives the daemon.
      await uploads.close();
      await mesh.stop();
      await store.close();
      log.info('meshd stopped');
    })());
  return { store, mesh, registryUrl, stop };
}
