// What a meshd holds while it takes a large blob from a peer and then writes its own copy into containerd. grpc-js
// frames every message to containerd into a fresh 1 MiB buffer, which V8 leaves resident until about 32 MiB of
// them wait (src/util/scavenge.ts); meshd collects them as it goes.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { builtEntryPoints } from './fleet/layout.js';
import { ctr } from './helpers/containerd.js';
import { startMeshd, waitForDataPlane, type Meshd } from './helpers/meshd.js';
import { rssKb } from './helpers/procfs.js';
import { run } from './helpers/run.js';
import { waitFor } from './helpers/wait.js';

const { meshctl } = builtEntryPoints();
const MiB = 1 << 20;
const socket = inject('containerdSocket');
const dir = mkdtempSync(join(tmpdir(), 'upload-memory-test-'));
const nsA = `upload-memory-a-${randomUUID().slice(0, 8)}`;
const nsB = `upload-memory-b-${randomUUID().slice(0, 8)}`;
const pushed: string[] = [];
let a: Meshd;
let b: Meshd;

beforeAll(async () => {
  const keyFile = join(dir, 'swarm.key');
  await run(process.execPath, [meshctl, 'swarm-key', 'generate', keyFile]);
  const common = ['--store', 'containerd', '--containerd-socket', socket, '--swarm-key', keyFile, '--replicate', 'none', '--log-level', 'info'];
  a = await startMeshd([...common, '--containerd-namespace', nsA]);
  b = await startMeshd([...common, '--containerd-namespace', nsB, '--bootstrap', a.p2p[0]]);
  await waitForDataPlane(b, a);
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  rmSync(dir, { recursive: true, force: true });
  // Not left to fill the test containerd's disk: blobs pushed are unreferenced, so removing them loses nothing.
  for (const ns of [nsA, nsB]) for (const digest of pushed) await ctr(socket, ['-n', ns, 'content', 'rm', digest]).catch(() => undefined);
});

/** Pushes `mib` MiB to A as one streamed PATCH (one random MiB, made different each time by a counter); its digest. */
async function pushToA(mib: number): Promise<string> {
  const piece = randomBytes(MiB);
  const hash = createHash('sha256');
  const body = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (mib-- === 0) return controller.close();
      const chunk = Buffer.from(piece);
      chunk.writeUInt32BE(mib, 0);
      hash.update(chunk);
      controller.enqueue(chunk);
    },
  });
  const started = await fetch(`${a.url}/v2/library/app/blobs/uploads/`, { method: 'POST' });
  const location = new URL(started.headers.get('location')!, a.url);
  const patched = await fetch(location, { method: 'PATCH', body, duplex: 'half' } as RequestInit);
  const digest = `sha256:${hash.digest('hex')}`;
  pushed.push(digest);
  const done = new URL(patched.headers.get('location')!, a.url);
  done.searchParams.set('digest', digest);
  expect((await fetch(done, { method: 'PUT' })).status).toBe(201);
  await waitFor('node b to see node a holding the blob', async () => {
    const res = JSON.parse(await run(process.execPath, [meshctl, '--node', b.url, '--json', 'who-has', digest]));
    return res.providers.some((p: { id: string }) => p.id === a.peerId);
  });
  return digest;
}

/** B's highest resident memory above where it was before, while it serves `digest` to a client that keeps nothing and stores its own copy. */
async function riseWhileTaking(digest: string): Promise<number> {
  const before = (await rssKb(b.proc.pid!)) * 1024;
  let peak = before;
  const sampler = setInterval(() => void rssKb(b.proc.pid!).then((kb) => (peak = Math.max(peak, kb * 1024))), 20);
  try {
    const res = await fetch(`${b.url}/v2/library/app/blobs/${digest}?ns=docker.io`);
    expect(res.status).toBe(200);
    for await (const chunk of res.body!) void chunk;
    await waitFor('node b to store its own copy', async () => (await ctr(socket, ['-n', nsB, 'content', 'ls', '-q'])).includes(digest), { timeoutMs: 60_000 });
  } finally {
    clearInterval(sampler);
  }
  return (peak - before) / MiB;
}

describe('a large blob taken from a peer and stored in containerd', () => {
  it('keeps the taker within 40 MiB of its resident memory before, over 768 MiB streamed and stored', async () => {
    const rise = await riseWhileTaking(await pushToA(768));
    expect(rise).toBeLessThan(40);
  }, 120_000);
});
