// Zero-touch containerd: configure adds config_path to a real containerd's config.toml (with CRI enabled, as on a
// Kubernetes node), containerd restarted through the restart hook reads it and CRI loads with it; restore undoes it.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'smol-toml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configureMirror } from '../src/cli/mirror-config/configure.js';
import { restoreMirror } from '../src/cli/mirror-config/restore.js';
import type { Restarter } from '../src/cli/mirror-config/restart.js';
import { ctr, startContainerd, type TestContainerd } from './helpers/containerd.js';
import { criPull } from './helpers/cri.js';
import { startMeshd, type Meshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { skopeo } from './helpers/run.js';
import { startAll } from './helpers/start-all.js';

const exec = promisify(execFile);
let containerd: TestContainerd | undefined;
let meshd: Meshd | undefined;
let image: BuiltImage | undefined;
let work: string;

/** The config.toml containerd itself reads, merged with its defaults (`containerd config dump`). */
async function effectiveConfigPath(): Promise<unknown> {
  const { stdout } = await exec('containerd', ['--config', containerd!.config, 'config', 'dump'], { maxBuffer: 16 << 20 });
  const plugins = parse(stdout).plugins as Record<string, { registry?: { config_path?: string } }>;
  return plugins['io.containerd.grpc.v1.cri'].registry?.config_path;
}

/** CRI's line in `ctr plugins ls`: `ok` once it loaded with the config (a refused config makes it `error`). */
async function criStatus(): Promise<string | undefined> {
  const lines = (await ctr(containerd!.socket, ['plugins', 'ls'])).split('\n');
  return lines.find((l) => /^io\.containerd\.grpc\.v1\s+cri\s/.test(l))?.trim().split(/\s+/).pop();
}

/** The registry config_path the running CRI plugin started with: it logs its whole config when it starts. */
async function criStartedWith(): Promise<string | undefined> {
  const log = await readFile(join(dirname(containerd!.config), 'containerd.log'), 'utf8');
  const starts = log.split('\n').filter((l) => l.includes('Start cri plugin with config'));
  return /Registry:\{ConfigPath:(\S*)/.exec(starts.at(-1) ?? '')?.[1];
}

const restart: Restarter = async () => {
  await containerd!.restart();
  return { restarted: true, detail: 'the test containerd, stopped and started again' };
};

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'lm-zero-touch-'));
  await startAll([startContainerd({ cri: true }).then((c) => (containerd = c)), startMeshd(['--store', 'fs']).then((m) => (meshd = m))]);
  image = buildImage({ layerSizes: [64 * 1024, 128 * 1024], tag: '1', dir: join(work, 'image') });
  await skopeo(['copy', `oci:${image.dir}:1`, `docker://${meshd!.host}/app:1`, '--dest-tls-verify=false']);
});
afterAll(async () => {
  await Promise.allSettled([containerd?.stop(), meshd?.stop()]);
  await rm(work, { recursive: true, force: true });
});

describe('meshctl mirror configure on a containerd without config_path', () => {
  it('adds it, restarts containerd, whose CRI then pulls through meshd; restore puts the config back', async () => {
    const dir = join(work, 'certs.d');
    const original = await readFile(containerd!.config, 'utf8');
    expect(await effectiveConfigPath()).toBe('');
    expect(await criStatus()).toBe('ok');
    expect(await criStartedWith()).toBe('');

    const report = await configureMirror({ dir, containerdConfig: containerd!.config, mirrorUrl: meshd!.url, restart });
    expect(report.containerd.state).toBe('unset');
    expect(report.containerdEdit.action).toBe('set');
    expect(report.restart).toEqual({ restarted: true, detail: 'the test containerd, stopped and started again' });
    expect(await effectiveConfigPath()).toBe(dir);
    expect(await criStatus()).toBe('ok');
    expect(await criStartedWith()).toBe(dir);
    expect(await readFile(join(dir, '_default', 'hosts.toml'), 'utf8')).toContain(`[host."${meshd!.url}"]`);
    // As kubelet pulls: CRI resolves docker.io through hosts.toml to meshd, the only place that has this image.
    await criPull(containerd!.socket, 'docker.io/library/app:1');
    expect(await ctr(containerd!.socket, ['-n', 'k8s.io', 'images', 'ls'])).toMatch(new RegExp(`docker\\.io/library/app:1\\s+\\S+\\s+${image!.digest}`));
    // The image's layers are random bytes: no registry but this meshd has that digest.

    const restored = await restoreMirror({ dir, containerdConfig: containerd!.config, restart });
    expect(restored.containerd?.action).toBe('restored');
    expect(restored.restart?.restarted).toBe(true);
    expect(await readFile(containerd!.config, 'utf8')).toBe(original);
    expect(await effectiveConfigPath()).toBe('');
    expect(await criStatus()).toBe('ok');
    expect(await criStartedWith()).toBe('');
  });
});
