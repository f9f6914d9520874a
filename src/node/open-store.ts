// Chooses and opens the local store: containerd when its socket answers (or when
// asked for), the embedded filesystem store otherwise.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { ContainerdStore } from '../store/containerd/store.js';
import { FsStore } from '../store/fs-store.js';
import type { Store } from '../store/store.js';
import type { Config } from './config.js';

export async function openStore(config: Config, log: Logger): Promise<Store> {
  const connect = () =>
    ContainerdStore.connect({ socket: config.containerdSocket, namespace: config.containerdNamespace, logger: log.child({ component: 'store' }) });
  if (config.store === 'containerd') return connect();
  if (config.store === 'auto' && existsSync(config.containerdSocket)) {
    try {
      return await connect();
    } catch (err) {
      log.warn({ err, socket: config.containerdSocket }, 'containerd socket present but not answering; using the embedded store');
    }
  }
  const root = join(config.dataDir, 'store');
  log.info({ root }, 'using the embedded filesystem store');
  return FsStore.open(root, log.child({ component: 'store' }), config.gcDelayMs);
}
