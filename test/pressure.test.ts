// A real meshd on the embedded store against clients that misbehave: too many upload sessions, many
// large "manifest" reads at once, uploads cancelled mid-write, odd names and indexes, and odd requests
// to the peer data plane. Each must get a clear 4xx and leave meshd serving everyone else.
import { createHash, randomBytes } from 'node:crypto';
import { readdir, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerKey, proof, AUTH_HEADER } from '../src/mirror/peer-auth.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { peerFetch, type PeerAnswer, type PeerFetchInit } from './helpers/peer-fetch.js';
import { rssKb } from './helpers/procfs.js';
import { waitFor } from './helpers/wait.js';

const MiB = 1 << 20;
const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let meshd: Meshd;
const api = (path: string, init?: RequestInit) => fetch(`${meshd.url}${path}`, init);

async function pushBlob(data: Buffer<ArrayBuffer>, repo = 'app'): Promise<string> {
  const res = await api(`/v2/${repo}/blobs/uploads/?digest=${sha(data)}`, { method: 'POST', body: data });
  expect(res.status).toBe(201);
  return sha(data);
}

/** POST /blobs/uploads/ from a given local address (127.0.0.x), as another client would, on a connection of its own. */
function startUploadFrom(on: Meshd, localAddress: string): Promise<{ status: number; retryAfter?: string }> {
  const { hostname, port } = new URL(on.url);
  return new Promise((resolve, reject) => {
    const req = request({ host: hostname, port, localAddress, agent: false, method: 'POST', path: '/v2/app/blobs/uploads/' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end();
  });
}

const openDescriptors = async (of: Meshd) => (await readdir(`/proc/${of.proc.pid}/fd`)).length;
const rssBytes = async () => (await rssKb(meshd.proc.pid!)) * 1024;

async function peer(path: string, init: PeerFetchInit = {}): Promise<PeerAnswer> {
  const method = init.method ?? 'GET';
  const headers = { ...(init.headers as Record<string, string>), [AUTH_HEADER]: proof(peerKey(undefined), { method, path, target: meshd.peerId, body: init.body }) };
  return peerFetch(`${meshd.peerUrl}${path}`, { ...init, headers });
}

beforeAll(async () => {
  meshd = await startMeshd(['--store', 'fs', '--gc-delay', '500ms', '--log-level', 'info']);
});
afterAll(async () => {
  await meshd?.stop();
});

describe('upload sessions', () => {
  it('hold no descriptor while idle, are capped per client and in total with 429 + Retry-After, and others keep working', async () => {
    const own = await startMeshd(['--store', 'fs', '--max-uploads', '60', '--max-uploads-per-client', '40', '--log-level', 'info']);
    try {
      const before = await openDescriptors(own);
      const mine = await Promise.all(Array.from({ length: 40 }, () => startUploadFrom(own, '127.0.0.1')));
      expect(mine.every((r) => r.status === 202)).toBe(true);
      // Their connections close a moment after the answers; the sessions themselves hold nothing open.
      await waitFor('idle sessions to hold no descriptors', async () => (await openDescriptors(own)) < before + 5, { timeoutMs: 5000 });
      const over = await startUploadFrom(own, '127.0.0.1');
      expect(over.status).toBe(429);
      expect(Number(over.retryAfter)).toBeGreaterThan(0);
      // Another client still gets sessions, until the total cap.
      const theirs = await Promise.all(Array.from({ length: 20 }, () => startUploadFrom(own, '127.0.0.2')));
      expect(theirs.every((r) => r.status === 202)).toBe(true);
      expect((await startUploadFrom(own, '127.0.0.3')).status).toBe(429);
      // Reads are not affected by the caps being reached.
      expect((await fetch(`${own.url}/v2/`)).status).toBe(200);
      expect((await fetch(`${own.url}/v2/_catalog`)).status).toBe(200);
    } finally {
      await own.stop();
    }
  });

  it('frees a session slot when an upload is cancelled, and gives 404 to a PATCH that a DELETE raced', async () => {
    // The 60 sessions above expire only after --upload-timeout; a fresh meshd keeps this test independent.
    const own = await startMeshd(['--store', 'fs', '--max-uploads-per-client', '2', '--log-level', 'info']);
    try {
      const at = async () => (await fetch(`${own.url}/v2/app/blobs/uploads/`, { method: 'POST' }));
      const [a] = await Promise.all([at(), at()]);
      expect((await at()).status).toBe(429);
      const location = a.headers.get('location')!;
      // A PATCH whose body is still arriving when the upload is cancelled.
      let push!: (chunk: Uint8Array | null) => void;
      const body = new ReadableStream<Uint8Array>({ start: (c) => { push = (chunk) => (chunk ? c.enqueue(chunk) : c.close()); } });
      const patch = fetch(`${own.url}${location}`, { method: 'PATCH', body, duplex: 'half' } as RequestInit);
      push(randomBytes(2 * MiB));
      await new Promise((r) => setTimeout(r, 200));
      expect((await fetch(`${own.url}${location}`, { method: 'DELETE' })).status).toBe(204);
      push(randomBytes(64 << 10));
      push(null);
      const res = await patch;
      expect(res.status).toBe(404);
      expect((await res.json()).errors[0].code).toBe('BLOB_UPLOAD_UNKNOWN');
      expect((await at()).status).toBe(202);
      expect(await readdir(join(own.dataDir, 'store', 'uploads'))).toHaveLength(2);
    } finally {
      await own.stop();
    }
  });
});

describe('connections', () => {
  it('are capped per listener: a client holding many open leaves meshd its descriptors and serves again once they close', async () => {
    const own = await startMeshd(['--store', 'fs', '--max-connections', '20', '--log-level', 'info']);
    const sockets: Socket[] = [];
    try {
      const before = await openDescriptors(own);
      const { hostname, port } = new URL(own.url);
      const closedByServer: boolean[] = [];
      for (let i = 0; i < 60; i++) {
        const socket = connect(Number(port), hostname);
        const at = sockets.push(socket) - 1;
        socket.on('close', () => (closedByServer[at] = true)).on('error', () => undefined);
      }
      await waitFor('the connections past the cap to be refused', () => closedByServer.filter(Boolean).length >= 40, { timeoutMs: 5000 });
      expect(await openDescriptors(own)).toBeLessThan(before + 25);
      for (const s of sockets) s.destroy();
      await waitFor('meshd to serve again', async () => (await fetch(`${own.url}/v2/`)).status === 200, { timeoutMs: 5000 });
    } finally {
      for (const s of sockets) s.destroy();
      await own.stop();
    }
  });
});

describe('downloads cut short', () => {
  it('leave meshd no descriptor once their clients hang up while meshd waits to write', async () => {
    const digest = await pushBlob(randomBytes(48 * MiB), 'cut'); // more than loopback's socket buffers hold
    const before = await openDescriptors(meshd);
    const { hostname, port } = new URL(meshd.url);
    await Promise.all(Array.from({ length: 8 }, () => new Promise<void>((resolve) => {
      const req = request({ host: hostname, port, agent: false, path: `/v2/cut/blobs/${digest}` }, (res) => {
        res.pause(); // meshd's writes back up, then the client goes
        setTimeout(() => {
          req.destroy();
          resolve();
        }, 300);
      });
      req.on('error', () => undefined).end();
    })));
    await waitFor('meshd to close the blob files of the downloads', async () => (await openDescriptors(meshd)) <= before, { timeoutMs: 3000, intervalMs: 50 });
  });
});

describe('memory', () => {
  it('stays flat under 200 concurrent manifest GETs of a 16 MiB layer, each answered 404 without reading it', async () => {
    const layer = await pushBlob(randomBytes(16 * MiB));
    const before = await rssBytes();
    const answers = await Promise.all(Array.from({ length: 200 }, () => api(`/v2/app/manifests/${layer}`)));
    const after = await rssBytes();
    expect(answers.map((r) => r.status)).toEqual(Array(200).fill(404));
    expect((await answers[0].json()).errors[0].code).toBe('MANIFEST_UNKNOWN');
    expect(after - before).toBeLessThan(48 * MiB);
  });
});

describe('odd but well-formed requests', () => {
  it('serves a repository name longer than a file name can be (fs store) without a 500', async () => {
    const repo = Array.from({ length: 4 }, (_, i) => `${String(i).repeat(60)}`).join('/');
    const config = Buffer.from('{"architecture":"amd64","os":"linux"}');
    await pushBlob(config, repo);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: [] });
    const put = await api(`/v2/${repo}/manifests/v1`, { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: manifest });
    expect(put.status).toBe(201);
    expect((await api(`/v2/${repo}/manifests/v1`)).status).toBe(200);
    expect((await api(`/v2/${repo}/manifests/v1`, { method: 'HEAD' })).status).toBe(200);
    expect((await api(`/v2/${repo}/manifests/v2`)).status).toBe(404);
  });

  it('refuses an index entry that claims to be a manifest but is a layer, and deletes keep working', async () => {
    const blob = await pushBlob(randomBytes(1000));
    const index = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: OCI_MANIFEST, digest: blob, size: 1000 }] });
    const res = await api('/v2/app/manifests/bad-index', { method: 'PUT', headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' }, body: index });
    expect(res.status).toBe(400);
    expect((await res.json()).errors[0].code).toBe('MANIFEST_INVALID');
    expect((await api(`/v2/app/blobs/${blob}`, { method: 'DELETE' })).status).toBe(202);
  });

  it('refuses a descriptor whose size is not the blob\'s', async () => {
    const config = Buffer.from('{"os":"linux"}');
    await pushBlob(config);
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: 3 }, layers: [] });
    const res = await api('/v2/app/manifests/bad-size', { method: 'PUT', headers: { 'content-type': OCI_MANIFEST }, body: manifest });
    expect(res.status).toBe(400);
  });

  it('frees the blobs only a deleted tag referenced, and keeps those another image still needs', async () => {
    const [shared, own] = [randomBytes(5000), randomBytes(6000)];
    const config = Buffer.from('{"os":"linux","n":1}');
    await Promise.all([pushBlob(shared), pushBlob(own), pushBlob(config)]);
    const layer = (b: Buffer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(b), size: b.length });
    const put = (tag: string, layers: Buffer[]) => api(`/v2/app/manifests/${tag}`, {
      method: 'PUT', headers: { 'content-type': OCI_MANIFEST },
      body: JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length }, layers: layers.map(layer) }),
    });
    expect((await put('keep', [shared])).status).toBe(201);
    expect((await put('drop', [shared, own])).status).toBe(201);
    expect((await api('/v2/app/manifests/drop', { method: 'DELETE' })).status).toBe(202);
    await waitFor('the dropped image\'s own layer to be freed', async () => (await api(`/v2/app/blobs/${sha(own)}`, { method: 'HEAD' })).status === 404);
    expect((await api(`/v2/app/blobs/${sha(shared)}`, { method: 'HEAD' })).status).toBe(200);
    expect((await api(`/v2/app/blobs/${sha(config)}`, { method: 'HEAD' })).status).toBe(200);
  });

  it('repairs a stored blob that does not match its digest when the right bytes are pushed again', async () => {
    const data = randomBytes(4096);
    const digest = await pushBlob(data);
    await writeFile(join(meshd.dataDir, 'store', 'blobs', 'sha256', digest.slice(7)), Buffer.alloc(4096));
    await pushBlob(data);
    const back = Buffer.from(await (await api(`/v2/app/blobs/${digest}`)).arrayBuffer());
    expect(sha(back)).toBe(digest);
  });
});

describe('the peer data plane', () => {
  it('answers 400 to odd names and sequence entries, and refuses one blob asked for twice', async () => {
    const blob = await pushBlob(randomBytes(1 << 16));
    expect((await peer(`/peer/v1/images?name=${'a'.repeat(300)}`)).status).toBe(404);
    expect((await peer(`/peer/v1/images?name=${'a'.repeat(500)}`)).status).toBe(400);
    const post = (body: unknown) => peer('/peer/v1/sequence', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    for (const body of [{ blobs: [null] }, { blobs: [1] }, { blobs: 'x' }, null, { blobs: [{ digest: blob, size: 'big' }] }]) {
      expect((await post(body)).status, JSON.stringify(body)).toBe(400);
    }
    const twice = await post({ blobs: Array(1000).fill({ digest: blob, size: 1 << 16 }) });
    expect(twice.status).toBe(400);
    expect(JSON.parse(twice.body.toString()).errors[0].message).toMatch(/twice/);
    const once = await post({ blobs: [{ digest: blob, size: 1 << 16 }] });
    expect(once.status).toBe(200);
    expect(once.body).toHaveLength(1 << 16);
  });

  // A POST's proof covers its body, so the body is read before anyone is known to be a member.
  it('refuses a body over 256 KiB, and cuts off a request trickled in to hold a connection, from anyone', async () => {
    const big = await peerFetch(`${meshd.peerUrl}/peer/v1/sequence`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.alloc(300 << 10, 0x20) });
    expect(big.status).toBe(413);
    const { hostname, port } = new URL(meshd.peerUrl);
    const socket = meshd.peerUrl.startsWith('https:') ? tlsConnect({ host: hostname, port: Number(port), rejectUnauthorized: false }) : connect(Number(port), hostname);
    const began = Date.now();
    socket.write(`POST /peer/v1/sequence HTTP/1.1\r\nhost: ${hostname}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n`);
    const trickle = setInterval(() => socket.write(' '), 500);
    let answer = '';
    socket.on('data', (d: Buffer) => (answer += d.toString()));
    try {
      await new Promise((resolve) => {
        socket.once('close', resolve);
        setTimeout(resolve, 20_000);
      });
    } finally {
      clearInterval(trickle);
      socket.destroy(); // when meshd did not: the test's own end
    }
    expect(Date.now() - began).toBeLessThan(12_000);
    expect(answer).toBe(''); // cut off, unanswered
  }, 30_000);
});
