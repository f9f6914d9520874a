// Writes need a privilege: real meshd, real local users (made for the test, removed after), curl run as
// each of them. An unprivileged user pulls as containerd does, but cannot push, tag, delete or upload a
// blob on any listener; root and members of the write group can; the token lets any client write.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensurePackages } from './helpers/apt.js';
import { ctr, removeNamespace } from './helpers/containerd.js';
import { curlAs, makeLocalUsers, type LocalUsers } from './helpers/local-users.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { skopeo } from './helpers/run.js';

const socket = inject('containerdSocket');
const ns = `privilege-${randomUUID().slice(0, 8)}`;
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json';

let users: LocalUsers | undefined;
let meshd: Meshd | undefined;
let image: BuiltImage;
const dirs: string[] = [];

/** A manifest of the pushed image's config and layers, different from it (another annotation). */
function otherManifest(): Buffer {
  const config = image.blobs.find((b) => b.mediaType.includes('config'))!;
  return Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: MANIFEST,
    config: { mediaType: config.mediaType, digest: config.digest, size: config.size },
    layers: image.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size })),
    annotations: { written: randomUUID() },
  }));
}

/** Every kind of write, as `user` against `base`; returns each one's status. */
async function writesAs(user: string, base: string, extra: string[] = []): Promise<Record<string, number>> {
  const blob = randomBytes(4096);
  const file = join(dirs[0], `blob-${randomUUID()}`);
  writeFileSync(file, blob, { mode: 0o644 });
  const manifest = join(dirs[0], `manifest-${randomUUID()}`);
  writeFileSync(manifest, otherManifest(), { mode: 0o644 });
  const curl = (args: string[]) => curlAs(user, [...extra, ...args]).then((r) => r.status);
  return {
    upload: await curl(['-X', 'POST', '-H', 'content-type: application/octet-stream', '--data-binary', `@${file}`, `${base}/v2/app/blobs/uploads/?digest=${sha(blob)}`]),
    startUpload: await curl(['-X', 'POST', `${base}/v2/app/blobs/uploads/`]),
    mount: await curl(['-X', 'POST', `${base}/v2/other/blobs/uploads/?mount=${image.layers[0].digest}&from=app`]),
    tag: await curl(['-X', 'PUT', '-H', `content-type: ${MANIFEST}`, '--data-binary', `@${manifest}`, `${base}/v2/app/manifests/1`]),
    deleteTag: await curl(['-X', 'DELETE', `${base}/v2/app/manifests/gone`]),
    deleteBlob: await curl(['-X', 'DELETE', `${base}/v2/app/blobs/${image.layers[1].digest}`]),
  };
}

beforeAll(async () => {
  await ensurePackages({ curl: 'curl', runuser: 'util-linux' });
  users = await makeLocalUsers();
  image = buildImage({ layerSizes: [64 << 10, 32 << 10], tag: '1' });
  dirs.push(mkdtempSync(join(tmpdir(), 'privilege-')), image.dir);
  chmodSync(dirs[0], 0o755); // the test users read the bodies curl sends from here
  meshd = await startMeshd(['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', ns, '--write-group', users.group]);
  await skopeo(['copy', `oci:${image.dir}:1`, `docker://${meshd.host}/app:1`, '--dest-tls-verify=false']);
  await skopeo(['copy', `oci:${image.dir}:1`, `docker://${meshd.host}/app:gone`, '--dest-tls-verify=false']);
}, 120_000);

afterAll(async () => {
  await meshd?.stop();
  await users?.remove();
  await removeNamespace(socket, ns);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('the registry on loopback, without a token', () => {
  it('lets an unprivileged user pull, and refuses every write with 403 and the reason', async () => {
    for (const user of ['nobody', users!.outsider]) {
      const pulled = await curlAs(user, ['-H', `accept: ${MANIFEST}`, `${meshd!.url}/v2/app/manifests/1`]);
      expect(pulled.status).toBe(200);
      expect(sha(Buffer.from(pulled.body))).toBe(image.digest);
      expect(await writesAs(user, meshd!.url)).toEqual({ upload: 403, startUpload: 403, mount: 403, tag: 403, deleteTag: 403, deleteBlob: 403 });
    }
    const refused = await curlAs(users!.outsider, ['-X', 'POST', `${meshd!.url}/v2/app/blobs/uploads/`]);
    expect(JSON.parse(refused.body)).toMatchObject({ errors: [{ code: 'DENIED', message: expect.stringMatching(`writes need root or membership of group ${users!.group}`) }] });
    // Nothing changed: the tags stand, and no blob of theirs reached containerd.
    const images = await ctr(socket, ['-n', ns, 'images', 'ls', '-q']);
    expect(images).toContain('docker.io/library/app:gone');
    const tagged = await fetch(`${meshd!.url}/v2/app/manifests/1`, { method: 'HEAD', headers: { accept: MANIFEST } });
    expect(tagged.headers.get('docker-content-digest')).toBe(image.digest);
    expect((await ctr(socket, ['-n', ns, 'content', 'ls', '-q'])).trim().split('\n').sort()).toEqual(image.blobs.map((b) => b.digest).sort());
  });

  it('refuses writes on the peer data plane too: it has no write routes', async () => {
    for (const method of ['PUT', 'DELETE', 'PATCH']) {
      // -k: the data plane's certificate is its node's own, not one a CA signed.
      const r = await curlAs(users!.outsider, ['-k', '-X', method, '--data-binary', 'x', `${meshd!.peerUrl}/v2/app/manifests/1`]);
      expect(r.status, method).toBeGreaterThanOrEqual(400);
      expect(r.status, method).toBeLessThan(500);
    }
  });

  it('lets a member of the write group push, tag and delete', async () => {
    const statuses = await writesAs(users!.member, meshd!.url);
    expect(statuses).toEqual({ upload: 201, startUpload: 202, mount: 201, tag: 201, deleteTag: 202, deleteBlob: 405 });
    const tagged = await fetch(`${meshd!.url}/v2/app/manifests/1`, { method: 'HEAD', headers: { accept: MANIFEST } });
    expect(tagged.headers.get('docker-content-digest')).not.toBe(image.digest);
  });
});

describe('a registry that also listens off loopback, with a token file', () => {
  let open: Meshd | undefined;
  const token = randomBytes(16).toString('hex');

  beforeAll(async () => {
    const tokenFile = join(dirs[0], 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o640 });
    open = await startMeshd(['--store', 'fs', '--registry-addr', '[::]:0', '--registry-token-file', tokenFile, '--write-group', users!.group]);
  }, 60_000);
  afterAll(async () => open?.stop());

  it('knows a local user behind IPv4 and IPv6 loopback; the token lets anyone write', async () => {
    const port = new URL(open!.url).port;
    for (const base of [`http://127.0.0.1:${port}`, `http://[::1]:${port}`]) {
      const pinged = await curlAs(users!.outsider, ['-D', '-', `${base}/v2/`]);
      expect(pinged.status, base).toBe(200);
      expect(pinged.body.toLowerCase()).toContain('www-authenticate: basic realm="layermesh"');
      expect(await writesAs(users!.outsider, base), base).toMatchObject({ upload: 401, tag: 401 });
      expect(await writesAs(users!.outsider, base, ['-u', `layermesh:${token}`]), base).toMatchObject({ upload: 201, startUpload: 202 });
      expect(await writesAs(users!.member, base), base).toMatchObject({ upload: 201, startUpload: 202 });
    }
  });

  it('refuses to start with a token file every user can read', async () => {
    const loose = join(dirs[0], 'loose-token');
    writeFileSync(loose, token, { mode: 0o644 });
    await expect(startMeshd(['--store', 'fs', '--registry-token-file', loose])).rejects.toThrow(/can be read or changed by every user of this host \(mode 644\)/);
  });
});
