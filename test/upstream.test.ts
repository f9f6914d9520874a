// --upstream: meshd pulls through from the image's own registry what no peer holds. The upstream is
// Debian's Go docker-registry on loopback (reached as docker.io via --upstream-endpoint), alone or behind
// test doubles: one that sends wrong bytes, one that demands bearer tokens from its own token service.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { writeDockerRegistryConfig } from '../bench/lib/servers.js';
import { ensurePackages } from './helpers/apt.js';
import { ctr, removeNamespace } from './helpers/containerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { freePort, listenOnLoopback } from './helpers/ports.js';
import { skopeo } from './helpers/run.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1 << 20;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

describe('pull-through from the upstream registry (--upstream)', () => {
  const socket = inject('containerdSocket');
  const dir = mkdtempSync(join(tmpdir(), 'upstream-test-'));
  const namespaces: string[] = [];
  const daemons: Meshd[] = [];
  const servers: Server[] = [];
  let registry: ChildProcess | undefined;
  let upstreamUrl = '';
  let image: BuiltImage;

  const ns = (what: string) => {
    const name = `upstream-${what}-${randomUUID().slice(0, 8)}`;
    namespaces.push(name);
    return name;
  };
  const meshd = async (args: string[]) => {
    const d = await startMeshd(args);
    daemons.push(d);
    return d;
  };
  const hostsDir = (d: Meshd) => {
    const hosts = join(dir, `certs.d-${d.peerId.slice(-8)}`);
    mkdirSync(join(hosts, '_default'), { recursive: true });
    // Only meshd: the pull can succeed only through it (nothing listens on port 9).
    writeFileSync(join(hosts, '_default', 'hosts.toml'), `server = "http://127.0.0.1:9"\n[host."${d.url}"]\n  capabilities = ["pull", "resolve"]\n`);
    return hosts;
  };

  beforeAll(async () => {
    await ensurePackages({ 'docker-registry': 'docker-registry', skopeo: 'skopeo' });
    const port = await freePort();
    mkdirSync(join(dir, 'registry'));
    const config = await writeDockerRegistryConfig(join(dir, 'registry'), `127.0.0.1:${port}`);
    registry = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
    upstreamUrl = `http://127.0.0.1:${port}`;
    await waitFor('docker-registry to answer', async () => (await fetch(`${upstreamUrl}/v2/`)).status === 200, { timeoutMs: 15_000 });
    image = buildImage({ layerSizes: [256 * 1024, 4 * MiB], tag: '1' });
    await skopeo(['copy', `oci:${image.dir}:1`, `docker://127.0.0.1:${port}/library/app:1`, '--dest-tls-verify=false']);
  });

  afterAll(async () => {
    await Promise.all(daemons.map((d) => d.stop()));
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    if (registry && registry.exitCode === null) {
      const exited = new Promise((r) => registry!.once('exit', r));
      registry.kill('SIGTERM');
      await exited;
    }
    for (const name of namespaces) await removeNamespace(socket, name).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    if (image) rmSync(image.dir, { recursive: true, force: true });
  });

  it('lets containerd pull by the original name through meshd alone, digests identical; meshd then holds every blob', async () => {
    const served = ns('meshd');
    const client = ns('client');
    const d = await meshd(['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', served,
      '--upstream', '--upstream-endpoint', `docker.io=${upstreamUrl}`]);
    // containerd pulls into another namespace than meshd serves, so that meshd's own copy is what is checked.
    await ctr(socket, ['-n', client, 'images', 'pull', '--hosts-dir', hostsDir(d), 'docker.io/library/app:1']);
    expect(await ctr(socket, ['-n', client, 'images', 'ls'])).toMatch(new RegExp(`docker\\.io/library/app:1\\s+\\S+\\s+${image.digest}`));
    const pulled = d.logs.filter((l) => l.msg === 'pulled through from the upstream registry').map((l) => l.digest);
    for (const blob of image.blobs) expect(pulled).toContain(blob.digest);
    await waitFor('meshd to hold every blob it pulled through', async () => {
      const content = await ctr(socket, ['-n', served, 'content', 'ls']);
      return image.blobs.every((b) => content.includes(b.digest));
    });
    // A pull-through cache makes no tag record: containerd recorded the image it pulled itself.
    expect(await ctr(socket, ['-n', served, 'images', 'ls', '-q'])).toBe('');
  });

  it('without --upstream, or with the upstream unreachable, answers 404 in the spec format and the pull fails', async () => {
    const off = await meshd(['--store', 'fs']);
    const dead = await meshd(['--store', 'fs', '--upstream', '--upstream-endpoint', `docker.io=http://127.0.0.1:${await freePort()}`]);
    for (const d of [off, dead]) {
      const started = Date.now();
      const res = await fetch(`${d.url}/v2/library/app/manifests/1?ns=docker.io`);
      expect(res.status).toBe(404);
      expect((await res.json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
      const blob = await fetch(`${d.url}/v2/library/app/blobs/${image.layers[0].digest}?ns=docker.io`);
      expect(blob.status).toBe(404);
      expect((await blob.json()).errors[0].code).toBe('BLOB_UNKNOWN');
      expect(Date.now() - started).toBeLessThan(10_000);
    }
    await expect(ctr(socket, ['-n', ns('off'), 'images', 'pull', '--hosts-dir', hostsDir(off), 'docker.io/library/app:1'])).rejects.toThrow(/StatusNotFound/);
    expect(dead.logs.some((l) => l.msg === 'the upstream registry could not be reached' && l.registry === 'docker.io')).toBe(true);
  });

  it('never completes a response of wrong bytes from the upstream, and stores nothing', async () => {
    const real = randomBytes(2 * MiB);
    const digest = sha(real);
    const wrong = Buffer.from(real);
    wrong[wrong.length - 1] ^= 0xff; // only the last byte differs: the one held back until verified
    const liar = createServer((req, res) => {
      if (req.url?.endsWith(`/blobs/${digest}`)) return void res.writeHead(200, { 'content-length': wrong.length }).end(wrong);
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"BLOB_UNKNOWN"}]}');
    });
    servers.push(liar);
    const d = await meshd(['--store', 'fs', '--upstream', '--upstream-endpoint', `docker.io=${await listenOnLoopback(liar)}`]);
    const res = await fetch(`${d.url}/v2/library/app/blobs/${digest}?ns=docker.io`);
    let body: Buffer | undefined;
    try {
      body = Buffer.from(await res.arrayBuffer());
    } catch {
      body = undefined; // cut short: the expected outcome
    }
    if (res.status === 200) expect(body === undefined || body.length < wrong.length).toBe(true);
    else expect(res.status).toBe(404);
    await waitFor('meshd to report the mismatch', () => d.logs.some((l) => l.msg === 'the upstream registry sent bytes that do not match the digest' && l.digest === digest));
    const again = await fetch(`${d.url}/v2/library/app/blobs/${digest}?ns=docker.io`, { method: 'HEAD' });
    expect(again.status).toBe(404);
    // Nothing under the data dir bears the digest once the transfers are over: no blob, no spool left.
    const hex = digest.slice('sha256:'.length);
    const files = (p: string): string[] => readdirSync(p, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(join(p, e.name)) : [e.name]));
    await waitFor('the spool files to be removed', () => files(d.dataDir).every((f) => !f.includes(hex)));
  });

  describe('behind a registry that demands bearer tokens', () => {
    const user = `u-${randomBytes(4).toString('hex')}`;
    const password = randomBytes(12).toString('hex');
    const tokens = new Set<string>();
    const tokenRequests: { authorized: boolean; scope: string | null }[] = [];
    let frontUrl = '';

    beforeAll(async () => {
      // The token service and the registry front share one server; the front proxies to docker-registry.
      const front = createServer((req, res) => {
        const url = new URL(req.url!, 'http://front');
        if (url.pathname === '/token') {
          const authorized = req.headers.authorization === `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
          tokenRequests.push({ authorized, scope: url.searchParams.get('scope') });
          if (!authorized) return void res.writeHead(401).end();
          const token = randomBytes(16).toString('hex');
          tokens.add(token);
          return void res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
        }
        const bearer = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1];
        if (!bearer || !tokens.has(bearer)) {
          const repo = /^\/v2\/(.+)\/(?:manifests|blobs)\//.exec(url.pathname)?.[1] ?? '';
          res.writeHead(401, { 'www-authenticate': `Bearer realm="${frontUrl}/token",service="test-registry",scope="repository:${repo}:pull"`, 'content-type': 'application/json' });
          return void res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        }
        const { authorization: _, host: __, ...headers } = req.headers;
        const proxied = request(`${upstreamUrl}${req.url}`, { method: req.method, headers }, (up) => {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
        });
        proxied.on('error', () => res.destroy());
        req.pipe(proxied);
      });
      servers.push(front);
      frontUrl = await listenOnLoopback(front);
    });

    const authFile = (name: string, pass: string) => {
      const file = join(dir, name);
      writeFileSync(file, JSON.stringify({ auths: { 'https://index.docker.io/v1/': { auth: Buffer.from(`${user}:${pass}`).toString('base64') } } }), { mode: 0o600 });
      return file;
    };

    it('pulls through with the credentials of the --upstream-auth file', async () => {
      const d = await meshd(['--store', 'fs', '--upstream', '--upstream-endpoint', `docker.io=${frontUrl}`, '--upstream-auth', authFile('good.json', password)]);
      const out = join(dir, 'pulled');
      await skopeo(['copy', '--src-tls-verify=false', `docker://${d.host}/library/app:1`, `oci:${out}:1`]);
      const index = JSON.parse(readFileSync(join(out, 'index.json'), 'utf8'));
      expect(index.manifests[0].digest).toBe(image.digest);
      for (const blob of image.blobs) expect(existsSync(join(out, 'blobs', 'sha256', blob.digest.slice(7)))).toBe(true);
      expect(tokenRequests.length).toBeGreaterThan(0);
      expect(tokenRequests.every((t) => t.authorized && t.scope === 'repository:library/app:pull')).toBe(true);
    });

    it('answers 404 and warns with registry and scope when the credentials are wrong', async () => {
      const d = await meshd(['--store', 'fs', '--upstream', '--upstream-endpoint', `docker.io=${frontUrl}`, '--upstream-auth', authFile('bad.json', 'wrong')]);
      const res = await fetch(`${d.url}/v2/library/app/manifests/1?ns=docker.io`);
      expect(res.status).toBe(404);
      expect((await res.json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
      // Logs arrive through meshd's stdout, possibly just after the answer.
      await waitFor('the warning naming registry and scope', () =>
        d.logs.some((l) => l.level === 40 && l.registry === 'docker.io' && l.scope === 'repository:library/app:pull' && l.msg === 'the upstream registry refused access (check --upstream-auth)'));
      expect(d.logs.some((l) => l.msg === 'the upstream token service refused a token')).toBe(true);
    });
  });
});
