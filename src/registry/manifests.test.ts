// Manifests pushed by tag as the mesh sees them: each push stamped, and the record of a tag always the push
// stamped last, however the store's writes of two pushes at once interleave.
import { createHash, randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob, type ImageRecord } from '../store/store.js';
import { Access } from './access.js';
import type { PushListener } from './context.js';
import { createRegistry } from './server.js';
import { UploadSessions } from './upload-sessions.js';

const log = pino({ level: 'silent' });
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
let app: ReturnType<typeof createRegistry> | undefined;
afterEach(async () => app?.close());

/** The first write of an image record takes a while: the second push's write finishes before it. */
class SlowFirstWrite extends MemoryStore {
  #writes = 0;
  constructor() {
    super();
    const put = this.images.put.bind(this.images);
    this.images.put = async (record: ImageRecord) => {
      if (this.#writes++ === 0) await new Promise((r) => setTimeout(r, 300));
      return put(record);
    };
  }
}

it('names a tag pushed twice at once after the push stamped last, whichever store write would finish first', async () => {
  const store = new SlowFirstWrite();
  let clock = 0;
  const stamps = new Map<string, number>();
  const pushes: PushListener = {
    check: () => {},
    labels: (_image, target) => {
      stamps.set(target.digest, ++clock);
      return { clock: String(clock) };
    },
    pushed: () => {},
  };
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log),
    log, maxManifestBytes: 4 << 20, access: new Access({ writeGroup: 'layermesh', log }), pushes });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/v2/app/manifests/1`;
  const manifests = await Promise.all([1, 2].map(async () => {
    const config = randomBytes(50);
    await putBlob(store, config, sha(config));
    return Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: 50 },
      layers: [],
    }));
  }));
  const answers = await Promise.all(manifests.map((body) => fetch(url, { method: 'PUT', body, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } })));
  expect(answers.map((a) => a.status)).toEqual([201, 201]);
  const last = [...stamps].sort((a, b) => b[1] - a[1])[0][0];
  const record = await store.images.get('docker.io/library/app:1');
  expect(record?.target.digest, 'the push stamped last').toBe(last);
  expect(record?.labels.clock).toBe('2');
});
