// --store auto at boot: a containerd whose socket is there but answers only a few seconds later is the store,
// not the embedded one (a host's pushes would land where containerd never sees them).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, expect, inject, it } from 'vitest';
import { containerdProxy } from '../../test/helpers/containerd.js';
import type { Config } from './config.js';
import { openStore } from './open-store.js';

const dir = mkdtempSync(join(tmpdir(), 'open-store-'));
let proxy: ReturnType<typeof containerdProxy> | undefined;
afterAll(async () => {
  await (await proxy)?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('waits for a containerd whose socket is there but does not answer yet, and takes it', async () => {
  const socket = join(dir, 'containerd.sock');
  writeFileSync(socket, ''); // there, nobody listening: containerd still starting
  setTimeout(() => {
    rmSync(socket);
    proxy = containerdProxy(inject('containerdSocket'), socket);
  }, 2_000);
  const config = {
    store: 'auto', containerdSocket: socket, containerdNamespace: `open-${randomBytes(4).toString('hex')}`, dataDir: dir, gcDelayMs: 10_000,
  } as Config;
  const store = await openStore(config, pino({ level: 'silent' }), 20_000);
  try {
    expect(store.kind).toBe('containerd');
  } finally {
    await store.close();
  }
});
