// Issue 12, finding 2: a blob pushed again right after the manifest that held it was deleted. containerd
// 1.6 answers AlreadyExists for the re-push's commit while its GC may already be taking the blob.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ctr } from './helpers/containerd.js';
import { waitFor } from './helpers/wait.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { repushRound } from './helpers/repush.js';

const ROUNDS = 200;
const LANES = 4;

describe('re-push after a manifest delete, on the containerd store', () => {
  const socket = inject('containerdSocket');
  const ns = `repush-${randomUUID().slice(0, 8)}`;
  let meshd: Meshd;

  beforeAll(async () => {
    meshd = await startMeshd(['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', ns, '--log-level', 'info']);
  });
  afterAll(async () => {
    await meshd?.stop();
  });

  it(`answers 201 to every one of ${ROUNDS} re-pushes and serves the blob`, async () => {
    const failures: string[] = [];
    // A few repositories side by side: more rounds in the time, and GC runs amid other pushes as in real use.
    await Promise.all(Array.from({ length: LANES }, async (_, lane) => {
      for (let i = lane; i < ROUNDS; i += LANES) {
        const { failure } = await repushRound(meshd.url, `race/app${lane}`);
        if (failure) failures.push(`round ${i}: ${failure}`);
      }
    }));
    expect(failures.length, failures.slice(0, 5).join('\n')).toBe(0);
    // Each upload's own lease goes once its blob is under a lease of its own (just after the commit).
    await waitFor('the uploads\' leases to go', async () => !(await ctr(socket, ['-n', ns, 'leases', 'ls'])).includes('layermesh-upload-'), { timeoutMs: 5000, intervalMs: 50 });
  }, 120_000);
});
