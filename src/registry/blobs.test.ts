// Blobs served from a store that keeps no files (containerd over gRPC, memory): streamed, not empty.
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { Access } from './access.js';
import { createRegistry } from './server.js';
import { UploadSessions } from './upload-sessions.js';

let app: ReturnType<typeof createRegistry> | undefined;
afterEach(async () => app?.close());

it('sends a blob whole, and a range of it, from a store without local files', async () => {
  const store = new MemoryStore();
  const log = pino({ level: 'silent' });
  const bytes = randomBytes(200_000);
  await putBlob(store, bytes, digestOf(bytes));
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 100, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 4 << 20, access: new Access({ writeGroup: 'layermesh', log }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v2/app/blobs/${digestOf(bytes)}`;
  const whole = await fetch(url);
  expect(whole.status).toBe(200);
  expect(Buffer.from(await whole.arrayBuffer()).equals(bytes)).toBe(true);
  const range = await fetch(url, { headers: { range: 'bytes=100-199' } });
  expect(range.status).toBe(206);
  expect(Buffer.from(await range.arrayBuffer()).equals(bytes.subarray(100, 200))).toBe(true);
});
