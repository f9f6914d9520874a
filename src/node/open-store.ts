// Chooses and opens the local store: containerd when its socket answers (or when
// asked for), the embedded filesystem store otherwise.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ContainerdStore } from '../store/containerd/store.js';
import { FsStore } from '../store/fs-store.js';
import type { Store } from '../store/store.js';
import type { Config } from './config.js';

/**
 * How long `--store auto` waits for a containerd whose socket is there but does not answer yet (starting at boot
 * beside meshd) before taking the embedded store: a host's pushes would land where containerd never sees them.
 */
const CONTAINERD_WAIT_MS = 30_000;
const RETRY_MS = 1_000;

export async function openStore(config: Config, log: Logger, waitMs = CONTAINERD_WAIT_MS): Promise<Store> {
  const connect = () =>
    ContainerdStore.connect({
      socket: config.containerdSocket, namespace: config.containerdNamespace, logger: log.child({ component: 'store' }), abortLeftUploads: true,
    });
  if (config.store === 'containerd') return connect();
  if (config.store === 'auto' && existsSync(config.containerdSocket)) {
    for (let deadline = Date.now() + waitMs, attempt = 0; ; attempt++) {
      try {
        return await connect();
      } catch (err) {
        if (Date.now() >= deadline) {
          log.warn({ err, socket: config.containerdSocket, waitedMs: waitMs }, 'containerd socket present but not answering; using the embedded store');
          break;
        }
        if (attempt === 0) log.info({ socket: config.containerdSocket, err: (err as Error).message }, 'containerd socket present but not answering yet; waiting for it');
        await sleep(RETRY_MS);
      }
    }
  }
  const root = join(config.dataDir, 'store');
  log.info({ root }, 'using the embedded filesystem store');
  return FsStore.open(root, log.child({ component: 'store' }), config.gcDelayMs);
}
