// The registry round trip with real clients: skopeo pushes, containerd holds, ctr and skopeo pull back.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ctr } from './helpers/containerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { run, skopeo } from './helpers/run.js';
import { waitFor } from './helpers/wait.js';

const MESHCTL = new URL('../dist/src/cli/meshctl.js', import.meta.url).pathname;

const MiB = 1 << 20;

function pulledDigest(dir: string): string {
  return JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')).manifests[0].digest;
}

describe.each(['containerd', 'fs'] as const)('round trip on the %s store', (kind) => {
  const socket = inject('containerdSocket');
  const ns = `meshd-${randomUUID().slice(0, 8)}`;
  let meshd: Meshd;
  let image: BuiltImage;
  let multi: BuiltImage;

  beforeAll(async () => {
    image = buildImage({ layerSizes: [256 * 1024, 2 * MiB, 6 * MiB], tag: '1' });
    multi = buildImage({ layerSizes: [64 * 1024, 512 * 1024], tag: 'multi', platforms: ['amd64', 'arm64'] });
    const args = kind === 'containerd'
      ? ['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', ns]
      : ['--store', 'fs'];
    meshd = await startMeshd(args);
  });
  afterAll(async () => {
    await meshd?.stop();
    for (const i of [image, multi]) if (i) rmSync(i.dir, { recursive: true, force: true });
  });

  it('takes a multi-layer image from skopeo', async () => {
    await skopeo(['copy', `oci:${image.dir}:1`, `docker://${meshd.host}/app:1`, '--dest-tls-verify=false']);
    const tags = await (await fetch(`${meshd.url}/v2/app/tags/list`)).json();
    expect(tags).toEqual({ name: 'app', tags: ['1'] });
    if (kind !== 'containerd') return;
    const images = await ctr(socket, ['-n', ns, 'images', 'ls']);
    expect(images).toMatch(new RegExp(`docker\\.io/library/app:1\\s+application/vnd\\.oci\\.image\\.manifest\\.v1\\+json\\s+${image.digest}`));
    const content = await ctr(socket, ['-n', ns, 'content', 'ls']);
    for (const blob of image.blobs) expect(content).toContain(blob.digest);
    // Upload leases are released once the image record holds the content (just after the push returns).
    await waitFor('meshd to release its leases', async () => !(await ctr(socket, ['-n', ns, 'leases', 'ls'])).includes('layermesh'), { timeoutMs: 5000, intervalMs: 50 });
    // containerd's GC keeps what the image references: the manifest carries the reference labels.
    expect(content).toMatch(/containerd\.io\/gc\.ref\.content\.l\.2=sha256:/);
  });

  it('is listed by meshctl ls', async () => {
    const out = await run(process.execPath, [MESHCTL, 'ls', '--node', meshd.url]);
    expect(out).toMatch(new RegExp(`^docker\\.io/library/app:1\\s+${image.digest}$`, 'm'));
    const rows = JSON.parse(await run(process.execPath, [MESHCTL, 'ls', '--json', '--node', meshd.url]));
    // With the stamp of the push (see docs/replication.md, one truth per tag).
    expect(rows).toEqual([{ name: 'docker.io/library/app:1', digest: image.digest, push: { clock: expect.any(Number), node: expect.any(String) } }]);
  });

  it('serves it to ctr pull with identical digests', async () => {
    const other = `pull-${randomUUID().slice(0, 8)}`;
    const ref = `${meshd.host}/app:1`;
    await ctr(socket, ['-n', other, 'images', 'pull', '--plain-http', ref]);
    expect(await ctr(socket, ['-n', other, 'images', 'ls'])).toMatch(new RegExp(`${ref.replaceAll('.', '\\.')}\\s+\\S+\\s+${image.digest}`));
    const content = await ctr(socket, ['-n', other, 'content', 'ls']);
    for (const blob of image.blobs) expect(content).toContain(blob.digest);
    await ctr(socket, ['-n', other, 'images', 'rm', '--sync', ref]);
  });

  it('serves containerd as a mirror: ctr pulls docker.io/library/app:1 by its original name', async () => {
    const hosts = mkdtempSync(join(tmpdir(), 'certs.d-'));
    const other = `mirror-${randomUUID().slice(0, 8)}`;
    try {
      mkdirSync(join(hosts, '_default'));
      writeFileSync(join(hosts, '_default', 'hosts.toml'), `[host."${meshd.url}"]\n  capabilities = ["pull", "resolve"]\n`);
      await ctr(socket, ['-n', other, 'images', 'pull', '--hosts-dir', hosts, 'docker.io/library/app:1']);
      expect(await ctr(socket, ['-n', other, 'images', 'ls'])).toMatch(new RegExp(`docker\\.io/library/app:1\\s+\\S+\\s+${image.digest}`));
      await ctr(socket, ['-n', other, 'images', 'rm', '--sync', 'docker.io/library/app:1']);
    } finally {
      rmSync(hosts, { recursive: true, force: true });
    }
  });

  it('gives skopeo back the same manifest digest', async () => {
    const out = mkdtempSync(join(tmpdir(), 'skopeo-out-'));
    try {
      await skopeo(['copy', `docker://${meshd.host}/app:1`, `oci:${out}:1`, '--src-tls-verify=false']);
      expect(pulledDigest(out)).toBe(image.digest);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  it('uploads no layer on a second push', async () => {
    const uploads = () => meshd.logs.filter((l) => l.msg === 'upload started').length;
    const before = uploads();
    expect(before).toBeGreaterThanOrEqual(image.layers.length);
    await skopeo(['copy', `oci:${image.dir}:1`, `docker://${meshd.host}/app:1`, '--dest-tls-verify=false']);
    expect(uploads()).toBe(before);
  });

  it('round-trips a multi-platform index', async () => {
    await skopeo(['copy', '--all', `oci:${multi.dir}:multi`, `docker://${meshd.host}/team/tool:multi`, '--dest-tls-verify=false']);
    const head = await fetch(`${meshd.url}/v2/team/tool/manifests/multi`, { method: 'HEAD' });
    expect(head.headers.get('docker-content-digest')).toBe(multi.digest);
    expect(head.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');
    const out = mkdtempSync(join(tmpdir(), 'skopeo-out-'));
    try {
      await skopeo(['copy', '--all', `docker://${meshd.host}/team/tool:multi`, `oci:${out}:multi`, '--src-tls-verify=false']);
      expect(pulledDigest(out)).toBe(multi.digest);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    if (kind !== 'containerd') return;
    // Platform manifests pushed by digest are kept by the tagged index, not by records of their own.
    const images = await ctr(socket, ['-n', ns, 'images', 'ls', '-q']);
    expect(images.trim().split('\n').sort()).toEqual(['docker.io/library/app:1', 'docker.io/team/tool:multi']);
  });
});
