// SIGTERM stops meshd cleanly: in-flight and idle uploads are aborted and leave nothing partial.
import { randomUUID } from 'node:crypto';
import { readdir, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { connect, type Socket } from 'node:net';
import { describe, expect, inject, it } from 'vitest';
import { digestOf } from '../src/oci/digest.js';
import { AUTH_HEADER, peerKey, proof } from '../src/mirror/peer-auth.js';
import { ctr } from './helpers/containerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';

describe.each(['containerd', 'fs'] as const)('SIGTERM on the %s store', (kind) => {
  it('aborts idle and in-flight uploads, exits 0, and leaves no partial content', async () => {
    const socket = inject('containerdSocket');
    const ns = `stop-${randomUUID().slice(0, 8)}`;
    const storeArgs = kind === 'containerd'
      ? ['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', ns]
      : ['--store', 'fs'];
    const meshd = await startMeshd([...storeArgs, '--shutdown-grace', '1s'], kind === 'fs' ? { dataDir: `/tmp/meshd-stop-${randomUUID()}` } : {});
    const api = (path: string, init?: RequestInit) => fetch(`${meshd.url}${path}`, init);

    // One upload holding bytes, idle between chunks.
    const idle = (await api('/v2/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
    expect((await api(idle, { method: 'PATCH', body: Buffer.alloc(100_000, 1) })).status).toBe(202);
    // One upload whose chunk is still streaming when the signal comes.
    const busy = (await api('/v2/app/blobs/uploads/', { method: 'POST' })).headers.get('location')!;
    const cut = new Promise<string>((resolve) => {
      const req = request(`${meshd.url}${busy}`, { method: 'PATCH', headers: { 'content-length': 10_000_000 } });
      req.on('error', (err) => resolve(err.message));
      req.on('response', (res) => resolve(`answered ${res.statusCode}`));
      req.write(Buffer.alloc(200_000, 2));
    });
    await new Promise((r) => setTimeout(r, 300));

    const started = Date.now();
    const code = await meshd.stop('SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - started).toBeLessThan(5000);
    expect(await cut).toMatch(/socket hang up|ECONNRESET/);
    expect(meshd.logs.some((l) => l.msg === 'meshd stopped')).toBe(true);

    if (kind === 'containerd') {
      expect((await ctr(socket, ['-n', ns, 'content', 'active'])).trim().split('\n')).toHaveLength(1); // header only
      expect(await ctr(socket, ['-n', ns, 'leases', 'ls'])).not.toContain('layermesh-upload');
      expect((await ctr(socket, ['-n', ns, 'content', 'ls'])).trim().split('\n')).toHaveLength(1);
    } else {
      expect(await readdir(join(meshd.dataDir, 'store', 'uploads'))).toEqual([]);
      expect(await readdir(join(meshd.dataDir, 'store', 'blobs', 'sha256'))).toEqual([]);
      // The same data dir serves again after the restart.
      const again = await startMeshd(['--store', 'fs'], { dataDir: meshd.dataDir });
      expect((await fetch(`${again.url}/v2/`)).status).toBe(200);
      await again.stop();
      await rm(meshd.dataDir, { recursive: true, force: true });
    }
  });
});

/** A client that asked `path` of `url` and stopped reading (a slow or stuck link). */
function stuck(url: string, path: string, headers = ''): Socket {
  const { hostname, port } = new URL(url);
  const socket = connect(Number(port), hostname, () => socket.write(`GET ${path} HTTP/1.1\r\nhost: ${hostname}\r\n${headers}\r\n`));
  socket.pause();
  return socket;
}

/** A member that asked meshd's peer data plane for `digest` and stopped reading. */
function stuckMember(meshd: Meshd, digest: string): Socket {
  const path = `/peer/v1/blobs/${digest}`;
  return stuck(meshd.peerUrl, path, `${AUTH_HEADER}: ${proof(peerKey(undefined), { method: 'GET', path, target: meshd.peerId })}\r\n`);
}

describe('SIGTERM with a member reading slowly from the peer data plane', () => {
  it('cuts that download after --shutdown-grace and exits 0', async () => {
    const meshd = await startMeshd(['--store', 'fs', '--shutdown-grace', '1s', '--peer-plaintext']);
    const blob = Buffer.alloc(32 << 20, 7);
    const digest = digestOf(blob);
    expect((await fetch(`${meshd.url}/v2/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob })).status).toBe(201);
    const member = stuckMember(meshd, digest);
    try {
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      expect(await meshd.stop('SIGTERM')).toBe(0);
      expect(Date.now() - started).toBeLessThan(6_000);
    } finally {
      member.destroy();
      await meshd.stop('SIGKILL');
    }
  });

  it('gives a stuck registry client and a stuck member one grace together, not one after the other', async () => {
    const meshd = await startMeshd(['--store', 'fs', '--shutdown-grace', '4s', '--peer-plaintext']);
    const blob = Buffer.alloc(32 << 20, 9);
    const digest = digestOf(blob);
    expect((await fetch(`${meshd.url}/v2/app/blobs/uploads/?digest=${digest}`, { method: 'POST', body: blob })).status).toBe(201);
    const readers = [stuck(meshd.url, `/v2/app/blobs/${digest}`), stuckMember(meshd, digest)];
    try {
      await new Promise((r) => setTimeout(r, 500));
      const started = Date.now();
      expect(await meshd.stop('SIGTERM')).toBe(0);
      expect(Date.now() - started).toBeLessThan(6_500); // one grace (4 s) and the rest of the stop; two were 8 s and more
    } finally {
      readers.forEach((r) => r.destroy());
      await meshd.stop('SIGKILL');
    }
  });
});
