// Writes refused to a local user without the privilege: each answered, the log told now and then.
import { request } from 'node:http';
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

it("refuses what a browser sends on another site's behalf (a page elsewhere, a name made to point here), and serves the status page's own requests", async () => {
  const log = pino({ level: 'silent' });
  const store = new MemoryStore();
  app = createRegistry({
    store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 20, idleTimeoutMs: 60_000, maxSessions: 10, maxSessionsPerClient: 10 }, log), log, maxManifestBytes: 1 << 20,
    access: new Access({ writeGroup: 'layermesh', log, localUid: async () => 0, token: 'secret' }),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  const ask = (method: string, path: string, headers: Record<string, string>) => new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('utf8')));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  const self = `127.0.0.1:${port}`;
  // Registry clients: no Origin, no Sec-Fetch-Site, whatever name they use; meshctl's fetch sends Sec-Fetch-Mode.
  expect((await ask('GET', '/v2/_catalog', { host: `registry.internal:${port}` })).status).toBe(200);
  expect((await ask('GET', '/v2/_catalog', { host: `web1.lan:${port}`, 'sec-fetch-mode': 'cors' })).status).toBe(200);
  const viaFetch = await fetch(`http://127.0.0.1:${port}/v2/_catalog`, { headers: { host: `web1.lan:${port}` } });
  expect(viaFetch.status, "Node's own fetch, as meshctl asks").toBe(200);
  // The status page, opened at meshd's address: its own requests.
  expect((await ask('GET', '/v2/_catalog', { host: self, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' })).status).toBe(200);
  expect((await ask('POST', '/_mesh/v1/prune', { host: self, origin: `http://${self}`, 'sec-fetch-site': 'same-origin' })).status).not.toBe(403);
  // Another site's page: a form posted across sites, a fetch from elsewhere.
  // A link to the status page on another site's page (a wiki, a dashboard) opens it; that site's scripts cannot read it.
  const visit = { host: self, 'sec-fetch-site': 'cross-site', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };
  expect((await ask('GET', '/ui', visit)).status).not.toBe(403);
  expect((await ask('GET', '/ui', { ...visit, 'sec-fetch-mode': 'cors', 'sec-fetch-dest': 'empty' })).status).toBe(403);
  expect((await ask('GET', '/ui', { ...visit, 'sec-fetch-dest': 'iframe' })).status).toBe(403);
  expect((await ask('GET', '/_mesh/v1/peers', visit)).status).toBe(403);
  const crossSite = await ask('POST', '/v2/app/blobs/uploads/', { host: self, origin: 'http://evil.example', 'sec-fetch-site': 'cross-site' });
  expect(crossSite.status).toBe(403);
  expect(crossSite.body).toMatch(/DENIED.*pages of other sites/);
  expect((await ask('POST', '/_mesh/v1/prune', { host: self, origin: 'http://evil.example' })).status).toBe(403);
  expect((await ask('GET', '/v2/_catalog', { host: self, origin: 'null' })).status).toBe(403);
  // A browser that once answered the Basic challenge sends the token with other sites' requests too.
  const basic = `Basic ${Buffer.from('layermesh:secret').toString('base64')}`;
  expect((await ask('POST', '/_mesh/v1/prune', { host: self, origin: 'http://evil.example', authorization: basic })).status).toBe(403);
  expect((await ask('GET', '/v2/_catalog', { host: `rebind.evil.example:${port}`, 'sec-fetch-site': 'same-origin', authorization: basic })).status, 'the token itself, typed in').toBe(200);
  // A page whose name was made to resolve to 127.0.0.1: the browser calls it same-origin.
  const rebound = await ask('GET', '/v2/_catalog', { host: `rebind.evil.example:${port}`, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors' });
  expect(rebound.status).toBe(403);
  expect(rebound.body).toMatch(/at an IP address, localhost/);
});
