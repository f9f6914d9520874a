// --upstream against an https registry that misbehaves or redirects: to its https storage (followed, without the
// registry's credentials), to plain-HTTP addresses a local user might want meshd to read as root (never followed),
// and a tag naming a blob that is not a manifest (never served as one).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type RequestListener, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { digestOf } from '../src/oci/digest.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { listenOnLoopback } from './helpers/ports.js';
import { loopbackCert } from './helpers/tls-cert.js';
import { waitFor } from './helpers/wait.js';

const blob = randomBytes(300_000);
const digest = digestOf(blob);
const basic = `Basic ${Buffer.from('user:secret').toString('base64')}`;

describe('pull-through from an https registry that redirects or misbehaves', () => {
  const dir = mkdtempSync(join(tmpdir(), 'upstream-redirects-'));
  const servers: Server[] = [];
  /** What the plain-HTTP "metadata service" and the https storage were asked, with the Authorization they got. */
  const inside: string[] = [];
  const storage: { url: string; authorization?: string }[] = [];
  let d: Meshd;

  const listen = (server: Server, scheme: string): Promise<string> => {
    servers.push(server);
    return listenOnLoopback(server, scheme);
  };

  beforeAll(async () => {
    const tls = await loopbackCert(dir);
    const insideUrl = await listen(createHttpServer((req, res) => {
      inside.push(req.url!);
      res.end('s3cr3t');
    }), 'http');
    const storageUrl = await listen(createHttpsServer(tls, (req, res) => {
      storage.push({ url: req.url!, authorization: req.headers.authorization });
      res.writeHead(200, { 'content-length': blob.length }).end(blob);
    }), 'https');
    const registry: RequestListener = (req: IncomingMessage, res) => {
      const path = new URL(req.url!, 'https://registry').pathname;
      if (path === '/v2/app/manifests/1' && req.method === 'HEAD') return void res.writeHead(200).end(); // no digest: meshd GETs it
      if (path === '/v2/app/manifests/1') return void res.writeHead(302, { location: `${insideUrl}/latest/meta-data/credentials` }).end();
      if (path === '/v2/app/manifests/layer') {
        return void res.writeHead(200, { 'docker-content-digest': digest, 'content-length': blob.length, 'content-type': 'application/vnd.oci.image.manifest.v1+json' }).end();
      }
      if (path === `/v2/app/manifests/${digest}`) return void res.writeHead(200, { 'content-length': blob.length }).end(blob);
      if (path === '/v2/private/manifests/1') {
        return void res.writeHead(401, { 'www-authenticate': `Bearer realm="${insideUrl}/token",service="registry.test"` }).end();
      }
      if (path === `/v2/app/blobs/${digest}`) {
        if (req.headers.authorization !== basic) return void res.writeHead(401, { 'www-authenticate': 'Basic realm="registry.test"' }).end();
        return void res.writeHead(307, { location: `${storageUrl}/blobs/${digest.slice(7)}?signed=1` }).end();
      }
      res.writeHead(404).end();
    };
    const registryUrl = await listen(createHttpsServer(tls, registry), 'https');
    const auth = join(dir, 'auth.json');
    writeFileSync(auth, JSON.stringify({ auths: { 'registry.test': { auth: Buffer.from('user:secret').toString('base64') } } }), { mode: 0o600 });
    d = await startMeshd(['--store', 'fs', '--upstream', '--upstream-endpoint', `registry.test=${registryUrl}`, '--upstream-auth', auth],
      { env: { ...process.env, NODE_EXTRA_CA_CERTS: tls.certFile } });
  });

  afterAll(async () => {
    await d?.stop();
    await Promise.all(servers.map((s) => new Promise((r) => {
      s.close(r);
      s.closeAllConnections();
    })));
    rmSync(dir, { recursive: true, force: true });
  });

  it('follows a blob to the registry\'s https storage, without the registry\'s credentials, and verifies it', async () => {
    const res = await fetch(`${d.url}/v2/app/blobs/${digest}?ns=registry.test`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(blob)).toBe(true);
    expect(storage).toEqual([{ url: `/blobs/${digest.slice(7)}?signed=1`, authorization: undefined }]);
  });

  it('never follows a redirect from an https registry to plain HTTP: the client gets 404, the address nothing', async () => {
    const res = await fetch(`${d.url}/v2/app/manifests/1?ns=registry.test`);
    expect(res.status).toBe(404);
    expect((await res.json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
    expect(inside).toEqual([]);
    await waitFor('the refusal in the log', () => d.logs.some((l) => l.msg === 'the upstream registry could not be reached' && /refused a redirect to http:/.test(String(l.err))));
  });

  it('sends no credentials to a token service an https registry names on plain HTTP', async () => {
    const res = await fetch(`${d.url}/v2/private/manifests/1?ns=registry.test`);
    expect(res.status).toBe(404);
    expect(inside).toEqual([]);
    await waitFor('the refusal in the log', () => d.logs.some((l) => /token service that is not https/.test(String(l.msg)) && l.registry === 'registry.test'));
  });

  it('serves nothing as a manifest that is not one, when a tag upstream names a layer', async () => {
    const res = await fetch(`${d.url}/v2/app/manifests/layer?ns=registry.test`);
    expect(res.status).toBe(404);
    expect((await res.json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
  });
});
