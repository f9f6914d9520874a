// containerd stops under a running meshd (a restart, an upgrade): its registry and its data plane say so with
// 503 and Retry-After, in the spec's error format and without a server path, instead of an internal error.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerKey, proof } from '../src/mirror/peer-auth.js';
import { parseSwarmKey } from '../src/dht/swarm-key.js';
import { startContainerd, type TestContainerd } from './helpers/containerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { peerFetch } from './helpers/peer-fetch.js';
import { run } from './helpers/run.js';

const MESHCTL = new URL('../dist/src/cli/meshctl.js', import.meta.url).pathname;
const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

describe('meshd while its containerd is stopped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'store-unavailable-'));
  const keyFile = join(dir, 'swarm.key');
  const blob = randomBytes(4096);
  let containerd: TestContainerd | undefined;
  let meshd: Meshd | undefined;

  beforeAll(async () => {
    await run(process.execPath, [MESHCTL, 'swarm-key', 'generate', keyFile]);
    containerd = await startContainerd();
    meshd = await startMeshd(['--store', 'containerd', '--containerd-socket', containerd.socket, '--swarm-key', keyFile, '--replicate', 'none']);
    const pushed = await fetch(`${meshd.url}/v2/app/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', body: blob });
    expect(pushed.status).toBe(201);
    await containerd.stop();
  });

  afterAll(async () => {
    await meshd?.stop();
    await containerd?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** 503, UNAVAILABLE, a Retry-After, and no path of the server in the body. */
  function expectUnavailable(status: number, headers: { get(name: string): string | null }, body: string): void {
    expect(status, body).toBe(503);
    expect(headers.get('retry-after')).toBe('5');
    const parsed = JSON.parse(body) as { errors: { code: string; message: string }[] };
    expect(parsed.errors[0].code).toBe('UNAVAILABLE');
    expect(parsed.errors[0].message).toMatch(/did not answer.*try again/);
    for (const path of [containerd!.socket, containerd!.root, dir, tmpdir()]) expect(body).not.toContain(path);
  }

  it('answers pulls and pushes on its registry with 503 and Retry-After', async () => {
    for (const [path, init] of [
      [`/v2/app/blobs/${sha(blob)}`, { method: 'GET' }],
      [`/v2/app/manifests/latest`, { method: 'GET' }],
      [`/v2/app/blobs/uploads/?digest=${sha(Buffer.from('x'))}`, { method: 'POST', body: 'x' }],
    ] as const) {
      const res = await fetch(`${meshd!.url}${path}`, init);
      expectUnavailable(res.status, res.headers, await res.text());
    }
  });

  it('answers the status page\'s disk totals with 503, without an error line for each poll', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${meshd!.url}/_mesh/v1/df?totals`);
      expectUnavailable(res.status, res.headers, await res.text());
    }
    expect(meshd!.logs.filter((l) => Number(l.level) >= 50 && String(l.url).startsWith('/_mesh/v1/df'))).toEqual([]);
  });

  it('answers a member asking its data plane with 503 and Retry-After, so that it asks another holder', async () => {
    const path = `/peer/v1/blobs/${sha(blob)}`;
    const key = peerKey(parseSwarmKey(readFileSync(keyFile, 'utf8')));
    const res = await peerFetch(`${meshd!.peerUrl}${path}`, { headers: { 'x-layermesh-auth': proof(key, { method: 'GET', path, target: meshd!.peerId }) } });
    expectUnavailable(res.status, { get: (name) => (res.headers[name] as string | undefined) ?? null }, res.body.toString());
  });
});
