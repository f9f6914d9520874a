// ContainerdStore.connect and what its client does when containerd misbehaves, against the real containerd of
// test/global-setup.ts: what an earlier run left behind, a containerd that stops answering, one that is not there.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, inject, it } from 'vitest';
import { containerdProxy, ctr } from '../../../test/helpers/containerd.js';
import { pieces, sha256 } from '../conformance-kit.js';
import { StoreUnavailableError } from '../store.js';
import { ContainerdStore } from './store.js';

const socket = inject('containerdSocket');
const namespace = `lm-connect-${randomBytes(4).toString('hex')}`;
const logger = pino({ level: 'silent' });

/** Runs containerd's GC now: deleting a lease with --sync collects synchronously. */
async function collectGarbage(): Promise<void> {
  const id = `gc-${randomBytes(4).toString('hex')}`;
  await ctr(socket, ['-n', namespace, 'leases', 'create', '--id', id]);
  await ctr(socket, ['-n', namespace, 'leases', 'delete', '--sync', id]);
}

/** containerdProxy in a directory of its own, removed with it. */
async function stallingProxy(target: string): Promise<{ path: string; stall(): void; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'lm-stall-'));
  const path = join(dir, 'containerd.sock');
  const proxy = await containerdProxy(target, path);
  return { path, stall: proxy.stall, close: async () => {
    await proxy.close();
    rmSync(dir, { recursive: true, force: true });
  } };
}

describe('ContainerdStore.connect', () => {
  it('ends an upload as unavailable when containerd stops answering, instead of hanging with it', async () => {
    const proxy = await stallingProxy(socket);
    const hung = await ContainerdStore.connect({ socket: proxy.path, namespace, logger, writeResponseMs: 500 });
    try {
      const upload = await hung.beginUpload();
      await upload.append(pieces(randomBytes(100_000), 65536));
      proxy.stall();
      const started = Date.now();
      await expect(upload.append(pieces(randomBytes(100_000), 65536))).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      await proxy.close();
      await hung.close();
    }
  });


  it('removes what uploads of a meshd killed mid-push left in its namespace (partial bytes, leases), and keeps committed blobs\' leases', async () => {
    const ns = `lm-left-${randomBytes(4).toString('hex')}`;
    const inNs = (...args: string[]) => ctr(socket, ['-n', ns, ...args]);
    const killed = await ContainerdStore.connect({ socket, namespace: ns, logger });
    const kept = randomBytes(1000);
    const committed = await killed.beginUpload(sha256(kept));
    await committed.append(pieces(kept, 400));
    await committed.commit({ digest: sha256(kept), size: kept.length });
    const unnamed = await killed.beginUpload();
    await unnamed.append(pieces(randomBytes(300_000), 65536));
    const named = await killed.beginUpload(sha256(randomBytes(10)));
    await named.append(pieces(randomBytes(200_000), 65536));
    await killed.close(); // no abort: as a killed meshd leaves them
    expect(await inNs('content', 'active')).toContain(unnamed.id);
    expect(await inNs('leases', 'ls')).toContain(named.id);

    // pussh reading the namespace, or a second store beside the daemon's, leaves uploads alone: only the daemon's start.
    await (await ContainerdStore.connect({ socket, namespace: ns, logger })).close();
    expect(await inNs('content', 'active')).toContain(unnamed.id);
    const next = await ContainerdStore.connect({ socket, namespace: ns, logger, abortLeftUploads: true });
    try {
      const active = await inNs('content', 'active');
      const leases = await inNs('leases', 'ls');
      for (const id of [unnamed.id, named.id]) {
        expect(active).not.toContain(id);
        expect(leases).not.toContain(id);
      }
      expect(leases).toContain(committed.id);
      await collectGarbage();
      expect(await next.stat(sha256(kept))).toBeDefined();
    } finally {
      await next.close();
    }
  });


  it('names the socket when containerd does not answer', async () => {
    await expect(ContainerdStore.connect({ socket: '/nonexistent/containerd.sock', namespace, logger }))
      .rejects.toThrow('/nonexistent/containerd.sock');
  });
});
