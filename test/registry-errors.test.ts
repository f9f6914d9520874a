// Every error path of the push and pull API, against a real meshd on the embedded store.
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage } from './helpers/oci-image.js';
import { curlAs } from './helpers/local-users.js';
import { run, skopeo } from './helpers/run.js';

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

let meshd: Meshd;
const api = (path: string, init?: RequestInit) => fetch(`${meshd.url}${path}`, init);

async function errorCode(res: Response): Promise<string> {
  const body = await res.json();
  return body.errors[0].code;
}

async function startUpload(repo = 'app'): Promise<string> {
  const res = await api(`/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  expect(res.status).toBe(202);
  return res.headers.get('location')!;
}

async function blobFiles(): Promise<string[]> {
  return readdir(join(meshd.dataDir, 'store', 'blobs', 'sha256'));
}

async function uploadFiles(): Promise<string[]> {
  return readdir(join(meshd.dataDir, 'store', 'uploads'));
}

async function pushBlob(data: Buffer<ArrayBuffer>, repo = 'app'): Promise<string> {
  const digest = sha(data);
  const res = await api(`/v2/${repo}/blobs/uploads/?digest=${digest}`, { method: 'POST', body: data });
  expect(res.status).toBe(201);
  return digest;
}

beforeAll(async () => {
  meshd = await startMeshd(['--store', 'fs', '--max-upload-size', '1MiB', '--upload-timeout', '2s']);
});
afterAll(async () => {
  await meshd?.stop();
});

describe('blob uploads', () => {
  it('rejects a wrong digest on PUT and commits nothing', async () => {
    const data = randomBytes(1000);
    const location = await startUpload();
    const wrong = sha(Buffer.from('something else'));
    const res = await api(`${location}?digest=${wrong}`, { method: 'PUT', body: data });
    expect(res.status).toBe(400);
    expect(await errorCode(res)).toBe('DIGEST_INVALID');
    expect((await api(`/v2/app/blobs/${wrong}`, { method: 'HEAD' })).status).toBe(404);
    expect((await api(`/v2/app/blobs/${sha(data)}`, { method: 'HEAD' })).status).toBe(404);
    expect(await blobFiles()).not.toContain(sha(data).slice(7));
    // The session is gone with its bytes.
    expect((await api(location)).status).toBe(404);
  });

  it('rejects an out-of-order chunk with 416 and keeps the upload usable', async () => {
    const data = randomBytes(3000);
    const location = await startUpload();
    const first = await api(location, { method: 'PATCH', body: data.subarray(0, 1000), headers: { 'content-range': '0-999' } });
    expect(first.status).toBe(202);
    expect(first.headers.get('range')).toBe('0-999');
    const skip = await api(location, { method: 'PATCH', body: data.subarray(2000), headers: { 'content-range': '2000-2999' } });
    expect(skip.status).toBe(416);
    expect(skip.headers.get('range')).toBe('0-999');
    const second = await api(location, { method: 'PATCH', body: data.subarray(1000), headers: { 'content-range': '1000-2999' } });
    expect(second.status).toBe(202);
    const done = await api(`${location}?digest=${sha(data)}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    const back = Buffer.from(await (await api(`/v2/app/blobs/${sha(data)}`)).arrayBuffer());
    expect(back.equals(data)).toBe(true);
  });

  it('refuses a chunk whose length is not its Content-Range, writing none of it, and says where the upload stands', async () => {
    const data = randomBytes(3000);
    const location = await startUpload();
    expect((await api(location, { method: 'PATCH', body: data.subarray(0, 1000), headers: { 'content-range': '0-999' } })).status).toBe(202);
    const longer = await api(location, { method: 'PATCH', body: data.subarray(1000, 2500), headers: { 'content-range': '1000-1999' } });
    expect(longer.status).toBe(416);
    expect(await errorCode(longer)).toBe('BLOB_UPLOAD_INVALID');
    expect(longer.headers.get('range')).toBe('0-999');
    const rest = await api(location, { method: 'PATCH', body: data.subarray(1000), headers: { 'content-range': '1000-2999' } });
    expect(rest.status).toBe(202);
    expect((await api(`${location}?digest=${sha(data)}`, { method: 'PUT' })).status).toBe(201);
    expect(Buffer.from(await (await api(`/v2/app/blobs/${sha(data)}`)).arrayBuffer()).equals(data)).toBe(true);
  });

  it('answers BLOB_UPLOAD_UNKNOWN for an unknown upload, and for an upload of another repository', async () => {
    const res = await api('/v2/app/blobs/uploads/00000000-0000-0000-0000-000000000000', { method: 'PATCH', body: 'x' });
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('BLOB_UPLOAD_UNKNOWN');
    const location = await startUpload('app');
    const other = await api(location.replace('/v2/app/', '/v2/other/'));
    expect(other.status).toBe(404);
    await api(location, { method: 'DELETE' });
  });

  it('refuses invalid repository names, including path tricks', async () => {
    // Sent raw: a URL parser would normalize `a/../b` to `b` before it left the client.
    for (const name of ['UPPER/case', 'a/../b', 'a//b', '-lead', 'a%2F..%2Fb']) {
      const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const { hostname, port } = new URL(meshd.url);
        const req = request({ hostname, port, path: `/v2/${name}/blobs/uploads/`, method: 'POST' }, (res) => {
          let text = '';
          res.on('data', (d) => (text += d)).on('end', () => resolve({ status: res.statusCode!, body: text }));
        });
        req.on('error', reject).end();
      });
      expect(status, name).toBe(400);
      expect(JSON.parse(body).errors[0].code, name).toBe('NAME_INVALID');
    }
  });

  it('refuses an upload over the size limit, declared or streamed, and keeps nothing', async () => {
    const big = randomBytes(1.5 * 1024 * 1024);
    const declared = await api(`/v2/app/blobs/uploads/?digest=${sha(big)}`, { method: 'POST', body: big });
    expect(declared.status).toBe(413);
    expect(await errorCode(declared)).toBe('SIZE_INVALID');
    const location = await startUpload();
    const streamed = await api(location, {
      method: 'PATCH',
      body: new ReadableStream({ start(c) { c.enqueue(big); c.close(); } }),
      duplex: 'half',
    } as RequestInit);
    expect(streamed.status).toBe(413);
    expect((await api(location)).status).toBe(404);
    expect(await uploadFiles()).toEqual([]);
  });

  it('resumes an interrupted upload from the bytes it kept', async () => {
    const data = randomBytes(600_000);
    const location = await startUpload();
    // Send 400 KB of a declared 600 KB chunk, then cut the connection.
    await new Promise<void>((resolve) => {
      const req = request(`${meshd.url}${location}`, { method: 'PATCH', headers: { 'content-length': data.length } });
      req.on('error', () => resolve());
      req.write(data.subarray(0, 400_000), () => setTimeout(() => { req.destroy(); resolve(); }, 200));
    });
    let kept = 0;
    for (let i = 0; i < 50 && kept === 0; i++) {
      const status = await api(location);
      expect(status.status).toBe(204);
      kept = Number(status.headers.get('range')!.split('-')[1]) + 1;
      if (kept === 1) kept = 0;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(kept).toBe(400_000);
    const rest = await api(location, { method: 'PATCH', body: data.subarray(kept), headers: { 'content-range': `${kept}-${data.length - 1}` } });
    expect(rest.status).toBe(202);
    expect((await api(`${location}?digest=${sha(data)}`, { method: 'PUT' })).status).toBe(201);
    const back = Buffer.from(await (await api(`/v2/app/blobs/${sha(data)}`)).arrayBuffer());
    expect(back.equals(data)).toBe(true);
  });

  it('expires abandoned uploads and releases their space', async () => {
    const location = await startUpload();
    await api(location, { method: 'PATCH', body: randomBytes(5000) });
    expect((await uploadFiles()).length).toBeGreaterThan(0);
    await new Promise((r) => setTimeout(r, 4500));
    expect((await api(location)).status).toBe(404);
    expect(await uploadFiles()).toEqual([]);
  });

  it('cancels an upload with DELETE', async () => {
    const location = await startUpload();
    await api(location, { method: 'PATCH', body: randomBytes(100) });
    expect((await api(location, { method: 'DELETE' })).status).toBe(204);
    expect((await api(location)).status).toBe(404);
  });
});

describe('manifests', () => {
  it('rejects a manifest that references a missing blob', async () => {
    const config = await pushBlob(Buffer.from('{}'));
    const missing = sha(Buffer.from('never uploaded'));
    const manifest = {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 2 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: missing, size: 14 }],
    };
    const res = await api('/v2/app/manifests/broken', {
      method: 'PUT',
      body: JSON.stringify(manifest),
      headers: { 'content-type': manifest.mediaType },
    });
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.errors[0]).toMatchObject({ code: 'MANIFEST_BLOB_UNKNOWN', detail: { digest: missing } });
    expect((await api('/v2/app/manifests/broken', { method: 'HEAD' })).status).toBe(404);
  });

  it('rejects invalid JSON and a digest reference that does not match', async () => {
    const bad = await api('/v2/app/manifests/x', { method: 'PUT', body: '{not json', headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect(bad.status).toBe(400);
    expect(await errorCode(bad)).toBe('MANIFEST_INVALID');
    const config = await pushBlob(Buffer.from('{"a":1}'));
    const body = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 7 }, layers: [] });
    const mismatch = await api(`/v2/app/manifests/${sha(Buffer.from('other'))}`, { method: 'PUT', body, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect(mismatch.status).toBe(400);
    expect(await errorCode(mismatch)).toBe('DIGEST_INVALID');
  });

  it('serves ranges of a blob (206) and refuses unsatisfiable ones (416)', async () => {
    const data = randomBytes(10_000);
    const digest = await pushBlob(data);
    const part = await api(`/v2/app/blobs/${digest}`, { headers: { range: 'bytes=100-199' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe('bytes 100-199/10000');
    expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(100, 200))).toBe(true);
    const tail = await api(`/v2/app/blobs/${digest}`, { headers: { range: 'bytes=-10' } });
    expect(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(-10))).toBe(true);
    const beyond = await api(`/v2/app/blobs/${digest}`, { headers: { range: 'bytes=10000-' } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get('content-range')).toBe('bytes */10000');
    const head = await api(`/v2/app/blobs/${digest}`, { method: 'HEAD' });
    expect(head.headers.get('content-length')).toBe('10000');
    expect(head.headers.get('docker-content-digest')).toBe(digest);
  });

  it('refuses to delete a blob an image still references', async () => {
    const layer = await pushBlob(randomBytes(100));
    const config = await pushBlob(Buffer.from('{"b":2}'));
    const body = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config, size: 7 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer, size: 100 }],
    });
    const put = await api('/v2/keep/manifests/1', { method: 'PUT', body, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
    expect(put.status).toBe(201);
    const refused = await api(`/v2/keep/blobs/${layer}`, { method: 'DELETE' });
    expect(refused.status).toBe(405);
    expect((await api(`/v2/keep/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
    expect((await api(`/v2/keep/manifests/${put.headers.get('docker-content-digest')}`, { method: 'DELETE' })).status).toBe(202);
    expect((await api(`/v2/keep/blobs/${layer}`, { method: 'DELETE' })).status).toBe(202);
    expect((await api(`/v2/keep/blobs/${layer}`, { method: 'HEAD' })).status).toBe(404);
  });

  it('answers MANIFEST_UNKNOWN to a DELETE of a manifest naming a layer, and keeps the layer', async () => {
    const layer = await pushBlob(randomBytes(100), 'loose');
    const res = await api(`/v2/loose/manifests/${layer}`, { method: 'DELETE' });
    expect(res.status).toBe(404);
    expect(await errorCode(res)).toBe('MANIFEST_UNKNOWN');
    expect((await api(`/v2/loose/blobs/${layer}`, { method: 'HEAD' })).status).toBe(200);
  });
});

describe('push token', () => {
  // Root and the write group write without it (test/local-privilege.test.ts); these clients run as nobody.
  it('lets a user without the privilege write with the token only, and pull without it', async () => {
    const guarded = await startMeshd(['--store', 'fs', '--registry-token', 's3cret']);
    try {
      const data = Buffer.from('guarded');
      const url = `${guarded.url}/v2/app/blobs/uploads/?digest=${sha(data)}`;
      const anon = await curlAs('nobody', ['-D', '-', '-X', 'POST', '--data-binary', 'guarded', url]);
      expect(anon.status).toBe(401);
      expect(anon.body.toLowerCase()).toContain('www-authenticate: basic realm="layermesh"');
      expect((await curlAs('nobody', ['-X', 'POST', '-u', 'any:wrong', '--data-binary', 'guarded', url])).status).toBe(401);
      expect((await curlAs('nobody', ['-X', 'POST', '-u', 'any:s3cret', '--data-binary', 'guarded', url])).status).toBe(201);
      expect((await curlAs('nobody', [`${guarded.url}/v2/app/blobs/${sha(data)}`])).status).toBe(200);
    } finally {
      await guarded.stop();
    }
  });

  it('lets skopeo push with the token as password, and pull without it', async () => {
    const guarded = await startMeshd(['--store', 'fs', '--registry-token', 's3cret']);
    const image = buildImage({ layerSizes: [2000, 3000], tag: '1' });
    chmodSync(image.dir, 0o755); // read by skopeo running as nobody
    const asNobody = (args: string[]) => run('runuser', ['-u', 'nobody', '--', 'env', 'HOME=/tmp', 'skopeo', '--insecure-policy', ...args]);
    try {
      const ref = `docker://${guarded.host}/guarded:1`;
      await expect(asNobody(['copy', '--dest-tls-verify=false', `oci:${image.dir}:1`, ref])).rejects.toThrow(/unauthorized/);
      await expect(asNobody(['copy', '--dest-tls-verify=false', '--dest-creds', 'any:wrong', `oci:${image.dir}:1`, ref])).rejects.toThrow(/unauthorized/);
      await asNobody(['copy', '--dest-tls-verify=false', '--dest-creds', 'any:s3cret', `oci:${image.dir}:1`, ref]);
      const raw = await skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${guarded.host}/guarded@${image.digest}`]);
      expect(sha(Buffer.from(raw))).toBe(image.digest);
    } finally {
      await guarded.stop();
      rmSync(image.dir, { recursive: true, force: true });
    }
  });

  it('will not start on a non-loopback address without a token', async () => {
    await expect(startMeshd(['--store', 'fs', '--registry-addr', '0.0.0.0:0'])).rejects.toThrow(/registry-token/);
  });
});
