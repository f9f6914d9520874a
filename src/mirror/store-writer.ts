// A verified blob from its spool into the local store.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { Spool } from './spool.js';

const COMMIT_POLL_MS = 25;

/** Writes the spool into the store as it arrives; the commit verifies the digest again. */
export async function storeSpool(store: Store, spool: Spool): Promise<void> {
  const upload = await store.beginUpload(spool.digest);
  try {
    await upload.append(spool.lend());
    await upload.commit({ digest: spool.digest, size: spool.written });
  } catch (err) {
    await upload.abort();
    throw err;
  }
}

/**
 * Puts the verified blob into the store. A local client that read it is usually this host's own
 * containerd, which stores what it pulled: a second copy from here would double the work, so the
 * store is given `graceMs` to show the client's copy first.
 */
export async function keepSpool(store: Store, spool: Spool, clients: Promise<unknown>[], graceMs: number, log: Logger): Promise<void> {
  if (clients.length > 0) {
    await Promise.all(clients);
    const deadline = Date.now() + graceMs;
    while (Date.now() < deadline) {
      if (await store.stat(spool.digest)) return void log.debug({ digest: spool.digest }, 'the local client stored the blob');
      await new Promise((r) => setTimeout(r, COMMIT_POLL_MS));
    }
  }
  if (await store.stat(spool.digest)) return;
  log.debug({ digest: spool.digest }, 'storing the blob from its spool');
  await storeSpool(store, spool);
}
