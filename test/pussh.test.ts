// pussh end to end: the real ssh client through a real sshd (its own key, config and port on loopback) to
// a real meshd, with images read from the test containerd, OCI layouts and docker save archives.
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ctr, importLayout, removeNamespace } from './helpers/containerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, withChangedLayer, type BuiltImage } from './helpers/oci-image.js';
import { freePort } from './helpers/ports.js';
import { outcomeOf, run, skopeo, type Outcome } from './helpers/run.js';
import { ensureOpenSsh, startSshd, waitForSsh, writeSshdConfig, type Sshd } from './helpers/sshd.js';
import { waitFor } from './helpers/wait.js';
import { Fleet } from './fleet/index.js';
import { isAlive, pidsWhere } from './helpers/procfs.js';
import { makeLocalUsers, type LocalUsers } from './helpers/local-users.js';
import { startAll } from './helpers/start-all.js';

const PUSSH = new URL('../dist/src/cli/pussh.js', import.meta.url).pathname;
const KiB = 1024;


function pussh(args: string[], opts: { argv0?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Outcome> {
  return outcomeOf(opts.argv0 ?? process.execPath, opts.argv0 ? args : [PUSSH, ...args], { env: { ...process.env, ...opts.env } });
}

interface Summary {
  ok: boolean;
  digest: string;
  source: string;
  platform: string | null;
  hosts: { host: string; ok: boolean; digest: string; layers: { total: number; sent: number; skipped: number; mounted: number }; blobsSent: number; bytesSent: number }[];
}

function summary(r: Outcome): Summary {
  // With --json, progress lines go to stderr; errors start with `pussh:`.
  expect(r.stderr, 'pussh wrote errors').not.toMatch(/^pussh:/m);
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Summary;
}

const socket = inject('containerdSocket');
const id = randomUUID().slice(0, 8);
const localNs = `pussh-src-${id}`;
const remoteNs = `pussh-dst-${id}`;
const dirs: string[] = [];
let sshd: Sshd | undefined;
let remote: Meshd | undefined;
let image: BuiltImage;
let users: LocalUsers | undefined;

/** Flags every push in this file shares: the test key, no known_hosts, the remote meshd's registry port. */
const ssh = () => ['-i', sshd!.keys.clientKey, '--no-host-key-check', '--remote-registry', remote!.host];
const local = () => ['--containerd-socket', socket, '--namespace', localNs];

async function remoteManifest(repo: string, ref: string): Promise<{ digest: string | null; body: Record<string, unknown> }> {
  const res = await fetch(`${remote!.url}/v2/${repo}/manifests/${ref}`, {
    headers: { accept: 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json' },
  });
  expect(res.status, `${repo}:${ref} on the remote`).toBe(200);
  return { digest: res.headers.get('docker-content-digest'), body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  image = buildImage({ layerSizes: [256 * KiB, 512 * KiB, 128 * KiB], tag: '1' });
  dirs.push(image.dir);
  users = await makeLocalUsers();
  await startAll([
    startSshd().then((s) => (sshd = s)),
    startMeshd(['--store', 'containerd', '--containerd-socket', socket, '--containerd-namespace', remoteNs, '--write-group', users.group]).then((m) => (remote = m)),
  ]);
  // sshd reads the authorized keys as the user logging in.
  chmodSync(sshd!.keys.dir, 0o755);
  chmodSync(sshd!.keys.authorizedKeys, 0o644);
  await importLayout(image, { scratchDir: tmpdir(), ctr: (args) => ctr(socket, ['-n', localNs, ...args]) });
});

afterAll(async () => {
  await Promise.allSettled([sshd?.stop(), remote?.stop()]);
  await users?.remove();
  await removeNamespace(socket, localNs);
  await removeNamespace(socket, remoteNs);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('pussh to one host', () => {
  it('pushes a multi-layer image from local containerd; the remote containerd holds every digest', async () => {
    const s = summary(await pussh(['--json', ...ssh(), ...local(), 'app:1', sshd!.target]));
    expect(s.source).toContain(`namespace ${localNs}`);
    expect(s.hosts).toMatchObject([{ ok: true, digest: image.digest, layers: { total: 3, sent: 3, skipped: 0, mounted: 0 }, blobsSent: 4 }]);
    const images = await ctr(socket, ['-n', remoteNs, 'images', 'ls']);
    expect(images).toMatch(new RegExp(`docker\\.io/library/app:1\\s+application/vnd\\.oci\\.image\\.manifest\\.v1\\+json\\s+${image.digest}`));
    const content = await ctr(socket, ['-n', remoteNs, 'content', 'ls', '-q']);
    for (const blob of image.blobs) expect(content).toContain(blob.digest);
  });

  it('sends only the changed layer the second time: in its summary and in what the remote registry received', async () => {
    const changed = withChangedLayer(image, { index: 1, size: 300 * KiB, tag: '2' });
    dirs.push(changed.dir);
    await importLayout(changed, { scratchDir: tmpdir(), ctr: (args) => ctr(socket, ['-n', localNs, ...args]) });
    const mark = remote!.logs.length;
    const s = summary(await pussh(['--json', ...ssh(), ...local(), 'app:2', sshd!.target]));
    expect(s.hosts[0].layers).toEqual({ total: 3, sent: 1, skipped: 2, mounted: 0 });

    await waitFor('meshd to log the push of app:2', () => remote!.logs.slice(mark).some((l) => l.msg === 'manifest pushed' && l.reference === '2'));
    const received = remote!.logs.slice(mark).filter((l) => l.msg === 'upload committed') as unknown as { digest: string; bytes: number }[];
    const newConfig = changed.blobs.find((b) => b.mediaType.includes('config'))!;
    // The new layer and the config that names it: nothing else was uploaded.
    expect(received.map((r) => r.digest).sort()).toEqual([changed.layers[1].digest, newConfig.digest].sort());
    const receivedBytes = received.reduce((n, r) => n + r.bytes, 0);
    expect(receivedBytes).toBe(changed.layers[1].size + newConfig.size);
    const manifestBytes = changed.blobs.find((b) => b.digest === changed.digest)!.size;
    expect(s.hosts[0].bytesSent).toBe(receivedBytes + manifestBytes);
    expect(receivedBytes).toBeLessThan(image.layers.reduce((n, l) => n + l.size, 0) / 2);
    expect(await ctr(socket, ['-n', remoteNs, 'images', 'ls'])).toMatch(new RegExp(`docker\\.io/library/app:2\\s+\\S+\\s+${changed.digest}`));
  });

  it('reports a key the host refuses as an authentication failure', async () => {
    const r = await pussh(['-i', sshd!.keys.wrongKey, '--no-host-key-check', '--remote-registry', remote!.host, ...local(), 'app:1', sshd!.target]);
    expect(r.code).toBe(5);
    expect(r.stderr).toMatch(/ssh to root@127\.0\.0\.1:\d+: authentication failed/);
    expect(r.stderr).toMatch(/Permission denied \(publickey\)/);
  });

  it('says that no meshd answers on the remote, and how to fix it', async () => {
    const nobody = await freePort();
    const r = await pussh(['-i', sshd!.keys.clientKey, '--no-host-key-check', '--remote-registry', `127.0.0.1:${nobody}`, ...local(), 'app:1', sshd!.target]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(new RegExp(`no meshd answers on 127\\.0\\.0\\.1:${nobody} on root@127\\.0\\.0\\.1:\\d+ \\(ssh: channel \\d+: open failed: connect failed: Connection refused\\)`));
    expect(r.stderr).toMatch(/Install and start meshd there/);
  });

  it('removes what it unpacked of an archive when interrupted (Ctrl-C) while reading it', async () => {
    const work = mkdtempSync(join(tmpdir(), 'pussh-interrupted-'));
    dirs.push(work);
    const tmp = join(work, 'tmp');
    mkdirSync(tmp);
    const tar = join(work, 'image.tar');
    await run('tar', ['-C', image.dir, '-cf', tar, '.']);
    // The archive comes through a pipe that stalls after its first 600 KB: pussh is still unpacking it.
    const fifo = join(work, 'archive');
    await run('mkfifo', [fifo]);
    const proc = spawn(process.execPath, [PUSSH, '--from', `docker-archive:${fifo}`, 'tools/stalled:1', 'root@192.0.2.1'], { env: { ...process.env, TMPDIR: tmp } });
    const exited = once(proc, 'exit');
    const writer = createWriteStream(fifo).on('error', () => {});
    try {
      writer.write(readFileSync(tar).subarray(0, 600 * KiB));
      const unpacked = () => readdirSync(tmp).filter((d) => d.startsWith('pussh-archive-'));
      await waitFor('pussh to unpack part of the archive', () => unpacked().length === 1 && readdirSync(join(tmp, unpacked()[0])).length > 0, { timeoutMs: 20_000 });
      proc.kill('SIGINT');
      await waitFor('the unpacked files to be removed', () => readdirSync(tmp).length === 0, { timeoutMs: 10_000 });
      // Node's exit waits for its blocked read of the pipe: the pipe's end lets it go.
      writer.destroy();
      expect((await exited)[0]).toBe(130);
    } finally {
      proc.kill('SIGKILL');
      writer.destroy();
    }
  });

  it.each([['SIGTERM', 143], ['SIGHUP', 129]] as const)('leaves no ssh process or socket directory behind when it gets %s while ssh still connects', async (signal, status) => {
    const work = mkdtempSync(join(tmpdir(), 'pussh-signalled-'));
    dirs.push(work);
    const tmp = join(work, 'tmp');
    mkdirSync(tmp);
    const mark = randomUUID();
    const proxy = `sleep 600.${Math.floor(Math.random() * 1e6)}`;
    // ssh waits on a proxy that never connects; its command line carries the mark to find it by.
    const proc = spawn(process.execPath, [PUSSH, ...local(), '-o', `ProxyCommand=${proxy}`, '-o', `SetEnv=PUSSH_TEST=${mark}`, 'app:1', 'root@192.0.2.1'],
      { env: { ...process.env, TMPDIR: tmp } });
    const exited = once(proc, 'exit');
    // ssh's, not pussh's own, which carries the mark too.
    const sshPids = () => pidsWhere((argv) => argv[0] === 'ssh' && argv.includes(`SetEnv=PUSSH_TEST=${mark}`));
    try {
      await waitFor('ssh to be connecting', async () => (await sshPids()).length > 0, { timeoutMs: 20_000 });
      proc.kill(signal);
      expect((await exited)[0]).toBe(status);
      await waitFor('ssh to be gone', async () => (await sshPids()).length === 0, { timeoutMs: 10_000 });
      expect(readdirSync(tmp)).toEqual([]);
    } finally {
      proc.kill('SIGKILL');
      const left = [...await sshPids(), ...await pidsWhere((argv) => argv.join(' ').includes(proxy))];
      for (const pid of left) process.kill(pid, 'SIGKILL');
    }
  });

  it('refuses a replication policy meshd would refuse, before reading or sending anything', async () => {
    const r = await pussh([...ssh(), ...local(), '--replicate', 'nodes=web*', 'app:1', 'root@192.0.2.1']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--replicate: replication policy "nodes=web\*": "nodes=web\*" is not all, none, name=GLOB/);
  });

  it('says that meshd broke off the push when it stops during one, not that ssh failed', async () => {
    const big = buildImage({ layerSizes: [96 << 20], tag: '1' });
    dirs.push(big.dir);
    const stopping = await startMeshd(['--store', 'fs']);
    const pushing = pussh(['-i', sshd!.keys.clientKey, '--no-host-key-check', '--remote-registry', stopping.host, '--from', `oci:${big.dir}:1`, 'tools/big:1', sshd!.target]);
    await waitFor('the upload to begin', () => stopping.logs.some((l) => l.msg === 'upload started'), { timeoutMs: 30_000, intervalMs: 10 });
    await stopping.stop('SIGKILL');
    const r = await pushing;
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/meshd on root@127\.0\.0\.1:\d+ broke off the push, ssh still up \(did meshd restart\?\)/);
  });

  it('says when the image is not there, before connecting anywhere', async () => {
    const r = await pussh([...ssh(), ...local(), 'nope:1', 'root@192.0.2.1']);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(new RegExp(`no image docker\\.io/library/nope:1`));
  });

  it('reads an OCI layout (--from oci:DIR:TAG) and docker save archives of both kinds', async () => {
    const human = await pussh([...ssh(), '--from', `oci:${image.dir}:1`, 'tools/oci:1', sshd!.target]);
    expect(human.code).toBe(0);
    // Plain lines when not on a terminal; the layers are already on the remote from the first test.
    expect(human.stdout).toMatch(/tools\/oci:1 \(\w{12}\) pushed: 0 of 3 layers sent, 3 already there; [\d.]+ (B|KiB) sent in [\d.]+ s/);
    expect((await remoteManifest('tools/oci', '1')).digest).toBe(image.digest);

    // Classic `docker save`: uncompressed layers, pushed as Docker layers whose digests are the image's diff_ids.
    const work = mkdtempSync(join(tmpdir(), 'pussh-archives-'));
    dirs.push(work);
    const classic = join(work, 'classic.tar');
    await skopeo(['copy', `oci:${image.dir}:1`, `docker-archive:${classic}:tools/archive:1`]);
    const s = summary(await pussh(['--json', ...ssh(), '--from', `docker-archive:${classic}`, 'tools/archive:1', sshd!.target]));
    expect(s.hosts[0].layers).toMatchObject({ total: 3, sent: 3 });
    const { digest, body } = await remoteManifest('tools/archive', '1');
    expect(digest).toBe(s.digest);
    const config = JSON.parse(readFileSync(join(image.dir, 'blobs', 'sha256', image.blobs.find((b) => b.mediaType.includes('config'))!.digest.slice(7)), 'utf8'));
    expect(body.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect((body.layers as { digest: string; mediaType: string }[]).map((l) => [l.mediaType, l.digest]))
      .toEqual(config.rootfs.diff_ids.map((d: string) => ['application/vnd.docker.image.rootfs.diff.tar', d]));
    // A client pulling it back checks every digest.
    await skopeo(['copy', `docker://${remote!.host}/tools/archive:1`, `oci:${join(work, 'pulled')}:1`, '--src-tls-verify=false']);

    // Docker 25+ saves an OCI layout inside the tar: pushed as the original manifest.
    const ociTar = join(work, 'oci.tar');
    await run('tar', ['-C', image.dir, '-cf', ociTar, '.']);
    const o = summary(await pussh(['--json', ...ssh(), '--from', `docker-archive:${ociTar}`, 'tools/ocitar:1', sshd!.target]));
    expect(o.digest).toBe(image.digest);
    expect((await remoteManifest('tools/ocitar', '1')).digest).toBe(image.digest);
  });

  it('pushes one platform of an index with --platform, the whole index without', async () => {
    const multi = buildImage({ layerSizes: [64 * KiB], tag: 'm', platforms: ['amd64', 'arm64'] });
    dirs.push(multi.dir);
    const index = JSON.parse(readFileSync(join(multi.dir, 'blobs', 'sha256', multi.digest.slice(7)), 'utf8')) as { manifests: { digest: string; platform: { architecture: string } }[] };
    const arm = index.manifests.find((m) => m.platform.architecture === 'arm64')!.digest;
    const amd = index.manifests.find((m) => m.platform.architecture === 'amd64')!.digest;

    const one = summary(await pussh(['--json', ...ssh(), '--from', `oci:${multi.dir}:m`, '--platform', 'linux/arm64', 'tools/multi:arm', sshd!.target]));
    expect(one).toMatchObject({ platform: 'linux/arm64', digest: arm });
    expect(one.hosts[0].layers.total).toBe(1);
    expect((await remoteManifest('tools/multi', 'arm')).digest).toBe(arm);
    expect((await fetch(`${remote!.url}/v2/tools/multi/manifests/${amd}`, { method: 'HEAD' })).status).toBe(404);

    const all = summary(await pussh(['--json', ...ssh(), '--from', `oci:${multi.dir}:m`, 'tools/multi:all', sshd!.target]));
    expect(all.hosts[0].layers).toMatchObject({ total: 2, sent: 1, skipped: 1 });
    expect((await remoteManifest('tools/multi', 'all')).digest).toBe(multi.digest);
  });

  it('runs as the Docker CLI plugin docker-pussh', async () => {
    const plugins = mkdtempSync(join(tmpdir(), 'cli-plugins-'));
    dirs.push(plugins);
    const plugin = join(plugins, 'docker-pussh');
    symlinkSync(PUSSH, plugin);
    // What the Docker CLI asks every plugin before listing or running it.
    const meta = await pussh(['docker-cli-plugin-metadata'], { argv0: plugin });
    expect(JSON.parse(meta.stdout)).toMatchObject({ SchemaVersion: '0.1.0', Vendor: 'LayerMesh', ShortDescription: expect.any(String) });
    // `docker pussh ARGS` runs `docker-pussh pussh ARGS`.
    const env = { DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND: 'docker' };
    const help = await pussh(['pussh', '--help'], { argv0: plugin, env });
    expect(help.stdout).toMatch(/^Usage: docker pussh \[options\] IMAGE \[USER@\]HOST\[:PORT\]/);
    const s = summary(await pussh(['pussh', '--json', ...ssh(), '--from', `oci:${image.dir}:1`, 'plugin/app:1', sshd!.target], { argv0: plugin, env }));
    expect(s.hosts[0].digest).toBe(image.digest);
  });
});

describe('pussh as an ssh user who is not root', () => {
  const tagged = (tag: string) => ctr(socket, ['-n', localNs, 'images', 'tag', 'docker.io/library/app:1', `docker.io/library/app:${tag}`]);

  it("pushes when the user is in meshd's write group", async () => {
    await tagged('member');
    const s = summary(await pussh(['--json', ...ssh(), ...local(), 'app:member', `${users!.member}@127.0.0.1:${sshd!.port}`]));
    expect(s.hosts).toMatchObject([{ ok: true, digest: image.digest }]);
    expect((await remoteManifest('app', 'member')).digest).toBe(image.digest);
  });

  it('is refused when the user is not, and says what to do', async () => {
    await tagged('outsider');
    const r = await pussh([...ssh(), ...local(), 'app:outsider', `${users!.outsider}@127.0.0.1:${sshd!.port}`]);
    expect(r.code).toBe(7);
    expect(r.stderr).toContain(`writes need root or membership of group ${users!.group}`);
    expect(r.stderr).toMatch(/usermod -aG GROUP USER/);
    expect((await fetch(`${remote!.url}/v2/app/manifests/outsider`, { method: 'HEAD' })).status).toBe(404);
  });
});

describe('pussh to many hosts behind one sshd (a bastion)', () => {
  // 15 names of one sshd, as hosts reached through one ProxyJump are to its sshd. It serves 10 connections not yet
  // authenticated and drops the others (OpenSSH's default drops at random past 10); pussh keeps to 8.
  const addresses = Array.from({ length: 15 }, (_, i) => `127.0.0.${i + 2}`);
  let bastion: Sshd | undefined;
  beforeAll(async () => {
    bastion = await startSshd({ alsoListen: addresses, maxStartups: '10' });
  });
  afterAll(async () => {
    await bastion?.stop();
  });

  it('pushes to every one: no more ssh connections are set up at once than sshd lets through', async () => {
    const targets = addresses.map((a) => `root@${a}:${bastion!.port}`);
    const r = await pussh(['--json', '-i', bastion!.keys.clientKey, '--no-host-key-check', '--remote-registry', remote!.host,
      '--from', `oci:${image.dir}:1`, 'tools/bastion:1', ...targets]);
    const s = summary(r);
    expect(s.hosts.filter((h) => !h.ok).map((h) => h.host)).toEqual([]);
    expect(s.hosts.map((h) => h.host).sort()).toEqual([...targets].sort());
    expect((await remoteManifest('tools/bastion', '1')).digest).toBe(image.digest);
  });
});

describe('pussh to two hosts in one command', () => {
  let fleet: Fleet | undefined;

  beforeAll(async () => {
    // Not joined into one mesh: otherwise the second host may take the layers from the first through the mesh.
    fleet = await Fleet.up(2, { bootstrap: false, waitFor: 'none' });
    // Each host runs its own sshd in front of its own meshd on 127.0.0.1:5000, the default pussh assumes.
    const sshdPath = await ensureOpenSsh();
    await Promise.all(fleet.hosts.map(async (h) => {
      const config = join(h.dir, 'sshd_config');
      await writeSshdConfig(config, { listen: h.address, port: 2222, keys: sshd!.keys, pidFile: join(h.dir, 'sshd.pid') });
      const { pid, log } = h.spawn(sshdPath, ['-D', '-e', '-f', config]);
      await waitForSsh(h.address, 2222, () => isAlive(pid), log);
    }));
  });
  afterAll(async () => {
    await fleet?.down(); // stops the hosts' sshd with everything else in their namespaces
  });

  it('pushes to both in parallel, each into its own meshd', async () => {
    const [h1, h2] = fleet!.hosts;
    const r = await pussh(['-i', sshd!.keys.clientKey, '--no-host-key-check', '--from', `oci:${image.dir}:1`, 'app:1', `root@${h1.address}:2222`, `root@${h2.address}:2222`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const h of [h1, h2]) {
      expect(r.stdout).toMatch(new RegExp(`root@${h.address.replaceAll('.', '\\.')}:2222: app:1 \\(\\w{12}\\) pushed: 3 of 3 layers sent`));
      expect(await h.ctr(['images', 'ls'])).toMatch(new RegExp(`docker\\.io/library/app:1\\s+\\S+\\s+${image.digest}`));
    }
  });
});
