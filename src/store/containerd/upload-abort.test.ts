// An aborted upload whose lease containerd cannot delete: the abort still ends, so that the error that led to it
// (a digest mismatch, the client's 400) is what the caller reports. A stub client stands in for a containerd
// that fails just then; the rest of the upload is tested against a real one (store.test.ts).
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Code, ContainerdError, type ContainerdClient } from './client.js';
import { LaterReleases } from './leases.js';
import { ContainerdUpload } from './upload.js';

describe('ContainerdUpload.abort', () => {
  it('ends without throwing when containerd cannot delete the lease, and logs it', async () => {
    const warnings: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (line: string) => void warnings.push(JSON.parse(line).msg) });
    const client = {
      socket: 'stub',
      unary: async (svc: string, name: string) => {
        if (svc === 'leases' && name === 'Delete') throw new ContainerdError('leases.Delete', Code.UNAVAILABLE, 'stub', new Error('containerd is restarting'));
        return {};
      },
    } as unknown as ContainerdClient;
    const upload = await ContainerdUpload.begin(undefined, { client, logger, stat: async () => undefined, blobAdded: () => {}, releases: new LaterReleases(logger), writing: new Set(), writeResponseMs: 1000 });
    await expect(upload.abort()).resolves.toBeUndefined();
    expect(warnings).toContain('could not delete the lease of an aborted upload; containerd drops it when it expires');
  });
});
