// `docker pussh` as Docker runs it: the Debian docker CLI finds the plugin in a private --config dir and runs it
// with its own global options; the image comes from a private dockerd, through a real sshd, into a meshd.
// Heavy (a dockerd and its containerd): run under `flock /tmp/lm-heavy.lock`.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerCli, startDockerd, type Dockerd } from './helpers/dockerd.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, withChangedLayer, type BuiltImage } from './helpers/oci-image.js';
import { outcomeOf, skopeo, type Outcome } from './helpers/run.js';
import { startSshd, type Sshd } from './helpers/sshd.js';
import { startAll } from './helpers/start-all.js';

const PUSSH = new URL('../dist/src/cli/pussh.js', import.meta.url).pathname;
const KiB = 1024;

interface Summary { ok: boolean; source: string; digest: string; hosts: { ok: boolean; layers: { total: number; sent: number; skipped: number } }[] }

let dockerd: Dockerd | undefined;
let sshd: Sshd | undefined;
let meshd: Meshd | undefined;
let config: string;
let image: BuiltImage;
const dirs: string[] = [];

/** The docker CLI with nothing of the machine's Docker setup: only what each test gives it. */
function docker(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Outcome> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DOCKER_')));
  return outcomeOf(dockerCli(), args, { env: { ...base, ...env } });
}

/** `pussh` arguments for the test sshd and meshd. */
const pusshArgs = (imageName: string) => ['pussh', '--json', '-i', sshd!.keys.clientKey, '--no-host-key-check', '--remote-registry', meshd!.host, imageName, sshd!.target];

function summary(r: Outcome): Summary {
  expect(r.stderr, 'docker pussh wrote errors').not.toMatch(/^(docker )?pussh:/m);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as Summary;
}

/** Loads an OCI layout into the test dockerd as NAME through a docker save archive, as `docker load` takes it. */
async function load(built: BuiltImage, name: string): Promise<void> {
  const archive = join(built.dir, '..', `${built.tag}.tar`);
  await skopeo(['copy', `oci:${built.dir}:${built.tag}`, `docker-archive:${archive}:${name}`]);
  await dockerd!.docker(['load', '-i', archive]);
}

beforeAll(async () => {
  await startAll([startDockerd().then((d) => (dockerd = d)), startSshd().then((s) => (sshd = s)), startMeshd(['--store', 'fs']).then((m) => (meshd = m))]);
  const work = mkdtempSync(join(tmpdir(), 'docker-plugin-'));
  dirs.push(work);
  image = buildImage({ layerSizes: [256 * KiB, 128 * KiB, 64 * KiB], tag: '1', dir: join(work, 'one') });
  await load(image, 'plug/app:1');
  // The plugin lives in a private Docker config dir, so the machine's ~/.docker is never read or written.
  config = join(work, 'docker-config');
  mkdirSync(join(config, 'cli-plugins'), { recursive: true });
  symlinkSync(PUSSH, join(config, 'cli-plugins', 'docker-pussh'));
  const created = await docker(['--config', config, 'context', 'create', 'lmtest', '--docker', `host=${dockerd!.host}`]);
  expect(created.code, created.stderr).toBe(0);
});

afterAll(async () => {
  await Promise.allSettled([dockerd?.stop(), sshd?.stop(), meshd?.stop()]);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('docker pussh with Docker\'s global options', () => {
  it('is listed by docker as a plugin', async () => {
    const r = await docker(['--config', config, 'pussh', '--help']);
    expect(r.stdout).toMatch(/^Usage: docker pussh \[options\] IMAGE/);
  });

  it('docker --context X pussh reads the image from that context\'s daemon and pushes every layer', async () => {
    const s = summary(await docker(['--config', config, '--context', 'lmtest', ...pusshArgs('plug/app:1')]));
    expect(s.source).toBe(`docker (${dockerd!.host}, context lmtest)`);
    expect(s.hosts).toMatchObject([{ ok: true, layers: { total: 3, sent: 3, skipped: 0 } }]);
  });

  it('docker -H unix://… pussh sends only the layer the host lacks', async () => {
    const changed = withChangedLayer(image, { index: 2, size: 96 * KiB, tag: '2', dir: join(dirs[0], 'two') });
    await load(changed, 'plug/app:2');
    const s = summary(await docker(['--config', config, '-H', dockerd!.host, '-l', 'error', ...pusshArgs('plug/app:2')]));
    expect(s.source).toBe(`docker (${dockerd!.host}, from -H)`);
    expect(s.hosts).toMatchObject([{ ok: true, layers: { total: 3, sent: 1, skipped: 2 } }]);
  });

  it('DOCKER_CONTEXT, and the current context set by docker context use, choose the daemon too', async () => {
    const byEnv = summary(await docker(['--config', config, ...pusshArgs('plug/app:1')], { DOCKER_CONTEXT: 'lmtest' }));
    expect(byEnv.source).toBe(`docker (${dockerd!.host}, context lmtest)`);
    expect(byEnv.hosts).toMatchObject([{ ok: true, layers: { total: 3, sent: 0, skipped: 3 } }]);

    expect((await docker(['--config', config, 'context', 'use', 'lmtest'])).code).toBe(0);
    try {
      const current = summary(await docker(['--config', config, ...pusshArgs('plug/app:2')]));
      expect(current.source).toBe(`docker (${dockerd!.host}, context lmtest)`);
      const byConfigEnv = summary(await docker(pusshArgs('plug/app:2'), { DOCKER_CONFIG: config }));
      expect(byConfigEnv.source).toBe(`docker (${dockerd!.host}, context lmtest)`);
    } finally {
      await docker(['--config', config, 'context', 'use', 'default']);
    }
  });

  it('names a Docker host it cannot read from (exit 2), and one where no daemon answers', async () => {
    // Docker itself checks --context and DOCKER_CONTEXT before running a plugin; hosts are ours to check.
    const ssh = await docker(['--config', config, '-H', 'ssh://me@build', ...pusshArgs('plug/app:1')]);
    expect(ssh.code).toBe(2);
    expect(ssh.stderr).toMatch(/cannot reach a Docker daemon over ssh:\/\//);
    const gone = `unix://${join(dirs[0], 'gone.sock')}`;
    const none = await docker(['--config', config, '-H', gone, 'pussh', '--from', 'docker', ...pusshArgs('plug/app:1').slice(1)]);
    expect(none.code).toBe(3);
    expect(none.stderr).toContain(`no Docker daemon answers at docker (${gone}, from -H) (ENOENT)`);
  });
});
