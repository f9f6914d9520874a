// meshd's lifecycle: open the store, serve the registry, stop cleanly.
import type { Logger } from 'pino';
import type { Store } from '../containerd/store.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { splitHostPort, type Config } from './config.js';
import { openStore } from './open-store.js';

/** Manifests larger than this are refused (the spec asks registries to take at least 4 MB). */
const MAX_MANIFEST_BYTES = 4 << 20;

export interface Daemon {
  store: Store;
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
  const store = await openStore(config, log);
  const uploads = new UploadSessions(store, { maxBlobBytes: config.maxUploadSize, idleTimeoutMs: config.uploadTimeoutMs }, log.child({ component: 'uploads' }));
  const registry = createRegistry({
    store,
    uploads,
    log: log.child({ component: 'registry' }),
    maxManifestBytes: MAX_MANIFEST_BYTES,
    token: config.registryToken,
  });
  try {
    await registry.listen({ host, port });
  } catch (err) {
    await uploads.close();
    await store.close();
    throw new Error(`registry cannot listen on ${config.registryAddr}: ${(err as Error).message}`, { cause: err });
  }
  const address = registry.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  const registryUrl = `http://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info({ registry: registryUrl, store: store.kind }, 'meshd ready');

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      log.info('meshd stopping');
      const cut = setTimeout(() => registry.server.closeAllConnections(), config.shutdownGraceMs);
      await registry.close();
      clearTimeout(cut);
      // Uploads not finished by now are aborted: nothing partial survives the daemon.
      await uploads.close();
      await store.close();
      log.info('meshd stopped');
    })());
  return { store, registryUrl, stop };
}
