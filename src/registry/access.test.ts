// Writes refused to a local user without the privilege: each answered, the log told now and then.
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { Access } from './access.js';
import { createRegistry } from './server.js';
import { UploadSessions } from './upload-sessions.js';

let app: ReturnType<typeof createRegistry> | undefined;
afterEach(async () => app?.close());

it('answers every refused write 403, and logs a line per user now and then, not per request', async () => {
  const lines: { msg: string; uid?: number }[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const store = new MemoryStore();
  app = createRegistry({
    store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 1 << 20,
    access: new Access({ writeGroup: 'layermesh', log, localUid: async () => 65534 }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v2/app/blobs/uploads/`;
  for (let i = 0; i < 40; i++) expect((await fetch(url, { method: 'POST' })).status).toBe(403);
  expect(lines.filter((l) => l.msg === 'write refused')).toEqual([expect.objectContaining({ uid: 65534 })]);
});
