import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { registerDiskApi, storeImageName } from './disk-api.js';
import { TotalsCache } from './disk-totals.js';
import { EvictionSetupError, type Evictor } from './evictor.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { Access } from '../registry/access.js';
import { MemoryStore } from '../store/memory-store.js';

const log = pino({ level: 'silent' });
let app: ReturnType<typeof createRegistry> | undefined;
afterEach(async () => app?.close());

/** `POST /_mesh/v1/prune` on a registry whose evictor's prune fails with `failure`. */
async function prune(failure: Error): Promise<{ status: number; body: string }> {
  const store = new MemoryStore();
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 1 << 20, access: new Access({ writeGroup: 'layermesh', log }) });
  const evictor = { prune: async () => { throw failure; } } as unknown as Evictor;
  registerDiskApi(app, { evictor, totals: new TotalsCache(store, log), router: { id: 'self', publish: async () => {} }, log, forget: () => {} });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const res = await fetch(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/_mesh/v1/prune`, { method: 'POST' });
  return { status: res.status, body: await res.text() };
}

describe('rm --mesh', () => {
  it('also ends a copy of the image under way on the node asked', async () => {
    const store = new MemoryStore();
    app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 1 << 20, access: new Access({ writeGroup: 'layermesh', log, localUid: async () => 0 }) });
    const forgotten: string[] = [];
    const published: unknown[] = [];
    const evictor = { remove: async () => ({ evicted: [], freed: 0, kept: 'not held here' }) } as unknown as Evictor;
    registerDiskApi(app, { evictor, totals: new TotalsCache(store, log), router: { id: 'self', publish: async (e) => void published.push(e) }, log, forget: (image) => void forgotten.push(image) });
    await app.listen({ host: '127.0.0.1', port: 0 });
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/_mesh/v1/images`;
    expect((await fetch(`${base}?name=app:1`, { method: 'DELETE' })).status).toBe(200);
    expect(forgotten, 'rm on this node only').toEqual([]);
    expect((await fetch(`${base}?name=app:1&mesh=1`, { method: 'DELETE' })).status).toBe(200);
    expect(forgotten).toEqual(['docker.io/library/app:1']);
    expect(published).toEqual([{ type: 'image-removed', image: 'docker.io/library/app:1', node: 'self' }]);
  });
});

describe('rm --mesh while a copy here shares the image\'s blobs', () => {
  it('asks nothing of the others (this node keeps the image for now) and says so', async () => {
    const store = new MemoryStore();
    app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 1 << 20, access: new Access({ writeGroup: 'layermesh', log, localUid: async () => 0 }) });
    const published: unknown[] = [];
    const evictor = { remove: async () => ({ evicted: [], freed: 0, kept: 'try again once that copy ends', untilCopied: true }) } as unknown as Evictor;
    registerDiskApi(app, { evictor, totals: new TotalsCache(store, log), router: { id: 'self', publish: async (e) => void published.push(e) }, log, forget: () => {} });
    const res = await app.inject({ method: 'DELETE', url: '/_mesh/v1/images?name=app:1&mesh=1' });
    expect(res.json()).toMatchObject({ kept: 'try again once that copy ends', untilCopied: true });
    expect(res.json().published).toBeUndefined();
    expect(published).toEqual([]);
  });
});

describe('prune', () => {
  it('answers 400 when this node is not set up to evict, and a 5xx that shows no server path when the store fails', async () => {
    const refused = await prune(new EvictionSetupError('prune evicts down to --disk-low, and this node has none'));
    expect(refused.status).toBe(400);
    expect(refused.body).toMatch(/this node has none/);
    const failed = await prune(new Error('reading image record /var/lib/layermesh/store/images/a.json: EIO'));
    expect(failed.status).toBe(500);
    expect(failed.body).not.toMatch(/\/var\//);
    expect(failed.body).toMatch(/details are in meshd's log/);
  });
});

describe('storeImageName', () => {
  it('names what a user typed as the store does', () => {
    expect(storeImageName('app:1')).toBe('docker.io/library/app:1');
    expect(storeImageName('app')).toBe('docker.io/library/app:latest');
    expect(storeImageName('registry.example:5000/team/app:2')).toBe('registry.example:5000/team/app:2');
    expect(storeImageName(`app@sha256:${'a'.repeat(64)}`)).toBe(`docker.io/library/app@sha256:${'a'.repeat(64)}`);
    expect(() => storeImageName('Not A Name')).toThrow(/invalid repository name/);
    // rm --mesh publishes it, and the mesh's checks refuse a malformed digest.
    expect(() => storeImageName('app@sha256:abc')).toThrow(/invalid digest/);
  });
});
