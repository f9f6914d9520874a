import { pino } from 'pino';
import { describe, expect, it, vi } from 'vitest';
import { meshRemoval } from './mesh-removal.js';
import { NewestPushes } from './newest-pushes.js';
import { RetryTimers } from './retries.js';
import { parseReplicationPolicy } from '../oci/replication-policy.js';

const NAME = 'docker.io/library/app:1';
const digest = (c: string) => `sha256:${c.repeat(64)}`;

/** rm --mesh on a node whose store fails the first `failures` removals. */
function removing(failures: number, pushes = new NewestPushes('self'), retries = new RetryTimers()) {
  const remove = vi.fn(async () => {
    if (failures-- > 0) throw new Error('containerd is not answering');
    return { evicted: [], freed: 0 };
  });
  const removal = meshRemoval({
    evictor: { remove }, policy: parseReplicationPolicy('all'), self: { name: 'self', labels: {} }, pushes,
    nameOf: (id) => id, log: pino({ level: 'silent' }), retries, retryAfterMs: [20, 40],
  });
  return { removal, remove, pushes };
}

describe('rm --mesh on a member', () => {
  it('is not tried again once the daemon stopped', async () => {
    const retries = new RetryTimers();
    const failing = removing(Infinity, new NewestPushes('self'), retries);
    failing.removal({ type: 'image-removed', image: NAME, node: 'asker' });
    await expect.poll(() => failing.remove.mock.calls.length).toBe(1);
    retries.stop();
    await new Promise((r) => setTimeout(r, 100));
    expect(failing.remove).toHaveBeenCalledTimes(1);
  });

  it('is tried again when the store failed it, a few times at most', async () => {
    const twice = removing(2);
    twice.removal({ type: 'image-removed', image: NAME, node: 'asker' });
    await expect.poll(() => twice.remove.mock.calls.length).toBe(3);

    const always = removing(Infinity);
    always.removal({ type: 'image-removed', image: NAME, node: 'asker' });
    await new Promise((r) => setTimeout(r, 150));
    expect(always.remove).toHaveBeenCalledTimes(3); // the first try and two more
  });

  it('is tried again while the image shares blobs with a copy under way here, and done once that copy ended', async () => {
    let copying = 2;
    const remove = vi.fn(async () => (copying-- > 0
      ? { evicted: [], freed: 0, kept: 'shares blobs with an image being copied here now', untilCopied: true }
      : { evicted: [{ image: NAME, digest: digest('a'), bytes: 1, reason: 'rm --mesh' }], freed: 1 }));
    const removal = meshRemoval({
      evictor: { remove }, policy: parseReplicationPolicy('all'), self: { name: 'self', labels: {} }, pushes: new NewestPushes('self'),
      nameOf: (id) => id, log: pino({ level: 'silent' }), retries: new RetryTimers(), retryAfterMs: [20, 40],
    });
    removal({ type: 'image-removed', image: NAME, node: 'asker' });
    await expect.poll(() => remove.mock.calls.length).toBe(3);
  });

  it('warns when it gives up waiting for the copies that share the image\'s blobs: the image stays', async () => {
    const warnings: string[] = [];
    const remove = vi.fn(async () => ({ evicted: [], freed: 0, kept: 'shares blobs with an image being copied here now', untilCopied: true }));
    const removal = meshRemoval({
      evictor: { remove }, policy: parseReplicationPolicy('all'), self: { name: 'self', labels: {} }, pushes: new NewestPushes('self'),
      nameOf: (id) => id, log: pino({ level: 'warn' }, { write: (l: string) => void warnings.push(JSON.parse(l).msg) }), retries: new RetryTimers(), retryAfterMs: [20, 40],
    });
    removal({ type: 'image-removed', image: NAME, node: 'asker' });
    await expect.poll(() => warnings).toEqual([expect.stringMatching(/given up; the image stays here/)]);
    expect(remove).toHaveBeenCalledTimes(3);
  });

  it('is not tried again once the name was pushed since: the push stands', async () => {
    const { removal, remove, pushes } = removing(1);
    pushes.observe(NAME, { clock: 1, node: 'a', digest: digest('a') });
    removal({ type: 'image-removed', image: NAME, node: 'asker' });
    await expect.poll(() => remove.mock.calls.length).toBe(1);
    pushes.observe(NAME, { clock: 2, node: 'b', digest: digest('b') });
    await new Promise((r) => setTimeout(r, 100));
    expect(remove).toHaveBeenCalledTimes(1);
  });
});
