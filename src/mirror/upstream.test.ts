// The upstream client against a registry on loopback that demands bearer tokens from its own token service.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Upstream } from './upstream.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;

describe('the upstream client', () => {
  let server: Server;
  let url = '';
  const issued = new Set<string>();
  const tokenScopes: string[] = [];
  let tokenPadding = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      const at = new URL(req.url!, 'http://upstream');
      if (at.pathname === '/token') {
        tokenScopes.push(at.searchParams.get('scope') ?? '');
        const token = randomBytes(16).toString('hex');
        issued.add(token);
        return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300, padding: 'x'.repeat(tokenPadding) }));
      }
      // A registry that answers a tag's HEAD without a digest, then sends half the manifest and stalls or breaks.
      if (/^\/v2\/(stall|reset)\//.test(at.pathname)) {
        if (req.method === 'HEAD') return void res.writeHead(200).end();
        res.writeHead(200, { 'content-length': '1000' });
        res.write('{"schemaVersion":2,');
        if (at.pathname.startsWith('/v2/reset/')) setTimeout(() => res.destroy(), 50);
        return;
      }
      const repo = /^\/v2\/(.+)\/manifests\//.exec(at.pathname)?.[1] ?? '';
      if (!issued.has(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? '')) {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${url}/token",service="test",scope="repository:${repo}:pull"` }).end();
      }
      res.writeHead(200, { 'docker-content-digest': DIGEST, 'content-length': '100', 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise((resolve) => {
    server.close(resolve);
    server.closeAllConnections();
  }));
  beforeEach(() => {
    tokenScopes.length = 0;
    tokenPadding = 0;
  });

  const upstream = () => new Upstream({ endpoints: { 'docker.io': url }, timeoutMs: 5_000, log: pino({ level: 'silent' }) });

  it('keeps a token per repository, at most 1,000 of them: the oldest is asked for again', async () => {
    const up = upstream();
    for (let i = 0; i <= 1_000; i++) expect((await up.resolveTag(`docker.io/r/${i}`, '1'))?.digest).toBe(DIGEST);
    expect(tokenScopes).toHaveLength(1_001);
    await up.resolveTag('docker.io/r/1000', '1');
    expect(tokenScopes).toHaveLength(1_001); // cached
    await up.resolveTag('docker.io/r/0', '1');
    expect(tokenScopes.slice(1_001)).toEqual(['repository:r/0:pull']); // dropped for the 1,001st
  });

  it('gives up on a tag whose manifest stops coming (stalled: within the timeout; broken: at once) instead of hanging or failing the request', async () => {
    const up = new Upstream({ endpoints: { 'docker.io': url }, timeoutMs: 300, log: pino({ level: 'silent' }) });
    const started = Date.now();
    expect(await up.resolveTag('docker.io/stall/app', '1')).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await up.resolveTag('docker.io/reset/app', '1')).toBeUndefined();
  });

  it('says when the upstream cannot be reached, apart from not having the blob (the next repository would wait as long)', async () => {
    const dead = new Upstream({ endpoints: { 'docker.io': 'http://127.0.0.1:9' }, timeoutMs: 2_000, log: pino({ level: 'silent' }) });
    await expect(dead.open('docker.io/library/app', DIGEST, false)).rejects.toThrow(/could not be reached/);
  });

  it('warns of an upstream that cannot be reached once a minute, not at each of the requests any local reader can make', async () => {
    const lines: { msg: string; registry?: string }[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
    const dead = new Upstream({ endpoints: { 'docker.io': 'http://127.0.0.1:9' }, timeoutMs: 2_000, log });
    for (let i = 0; i < 20; i++) await expect(dead.open('docker.io/library/app', `sha256:${String(i).padStart(64, '0')}`, false)).rejects.toThrow();
    expect(lines.map((l) => [l.msg, l.registry])).toEqual([['the upstream registry could not be reached', 'docker.io']]);
  });

  it('refuses a token service answer over 64 KiB', async () => {
    tokenPadding = 100 << 10;
    expect(await upstream().resolveTag('docker.io/big/app', '1')).toBeUndefined();
    expect(tokenScopes).toEqual(['repository:big/app:pull']);
  });
});
