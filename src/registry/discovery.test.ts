// The catalog of a store containerd shares with others: only the repositories this registry can name.
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { putImage, record } from '../store/conformance-kit.js';
import { MemoryStore } from '../store/memory-store.js';
import { Access } from './access.js';
import { createRegistry } from './server.js';
import { UploadSessions } from './upload-sessions.js';

const log = pino({ level: 'silent' });
let app: ReturnType<typeof createRegistry> | undefined;
afterEach(async () => app?.close());

it('lists the repositories a client can read, not the image ids Kubernetes records beside them', async () => {
  const store = new MemoryStore();
  const target = await putImage(store);
  for (const name of ['docker.io/library/app:1', 'ghcr.io/org/tool:2', `sha256:${target.digest.slice(7)}`]) await store.images.put(record(name, target));
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 4 << 20, access: new Access({ writeGroup: 'layermesh', log }) });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const { repositories } = (await (await fetch(`${base}/v2/_catalog`)).json()) as { repositories: string[] };
  expect(repositories).toEqual(['app', 'ghcr.io/org/tool']);
  for (const repo of repositories) expect((await fetch(`${base}/v2/${repo}/tags/list`)).status).toBe(200);
});
