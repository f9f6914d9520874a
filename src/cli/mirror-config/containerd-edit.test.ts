// configure adds config_path to containerd's config.toml (backed up, layout kept), restore puts the original back;
// --restart only when the file changed.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, lstat, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'smol-toml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configureMirror } from './configure.js';
import { formatConfigureReport, formatRestoreReport } from './format.js';
import { restoreMirror } from './restore.js';
import type { Restarter } from './restart.js';

const MESHCTL = new URL('../../../dist/src/cli/meshctl.js', import.meta.url).pathname;
const DEBIAN = 'version = 2\n# the packaged file\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n' +
  '    [plugins."io.containerd.grpc.v1.cri".cni]\n      bin_dir = "/usr/lib/cni"\n';

let tmp: string;
let dir: string;
let config: string;
const restarts: string[] = [];
const restart: Restarter = async (c) => (restarts.push(c), { restarted: true, detail: 'test restarter' });

beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'containerd-edit-'));
  dir = join(tmp, 'certs.d');
  config = join(tmp, 'config.toml');
  restarts.length = 0;
});
afterEach(() => rm(tmp, { recursive: true, force: true }));

const registryOf = (text: string) => ((parse(text).plugins as Record<string, Record<string, unknown>>)['io.containerd.grpc.v1.cri'].registry) as Record<string, unknown>;

describe('config_path in containerd\'s config.toml', () => {
  it('is added to a config without it, which is backed up and comes back byte for byte', async () => {
    await writeFile(config, DEBIAN);
    const report = await configureMirror({ dir, containerdConfig: config, restart });
    expect(report.containerdEdit).toEqual({ action: 'set', backup: `${config}.layermesh-backup` });
    const edited = await readFile(config, 'utf8');
    expect(edited.startsWith(DEBIAN)).toBe(true); // comments and layout kept
    expect(registryOf(edited)).toEqual({ config_path: dir });
    expect(restarts).toEqual([config]);
    expect(formatConfigureReport(report)).toMatch(/added config_path = ".*" under \[plugins\."io\.containerd\.grpc\.v1\.cri"\.registry\][^]*restarted containerd: test restarter/);
    // The command given for Docker's directory must not point containerd's config_path there.
    expect(formatConfigureReport(report)).toContain('meshctl mirror configure --dir /etc/docker/certs.d --no-containerd-config');

    // Again: nothing changes, nothing restarts.
    const again = await configureMirror({ dir, containerdConfig: config, restart });
    expect(again.containerdEdit).toMatchObject({ action: 'none', reason: 'already set' });
    expect(again.restart).toEqual({ restarted: false, detail: `${config} did not change: containerd not restarted` });

    const restored = await restoreMirror({ dir, containerdConfig: config, restart });
    expect(restored.containerd).toMatchObject({ action: 'restored' });
    expect(await readFile(config, 'utf8')).toBe(DEBIAN);
    expect(restarts).toEqual([config, config]);
    expect(formatRestoreReport(restored)).toContain(`restored ${config} from ${config}.layermesh-backup`);
  });

  it('goes into an existing registry table, under its header', async () => {
    const text = `${DEBIAN}  [plugins."io.containerd.grpc.v1.cri".registry]\n    [plugins."io.containerd.grpc.v1.cri".registry.configs."r.example".auth]\n      username = "u"\n`;
    await writeFile(config, text);
    await configureMirror({ dir, containerdConfig: config });
    const edited = await readFile(config, 'utf8');
    expect(edited).toContain(`  [plugins."io.containerd.grpc.v1.cri".registry]\n    # LayerMesh: config_path added`);
    expect(registryOf(edited)).toMatchObject({ config_path: dir, configs: { 'r.example': { auth: { username: 'u' } } } });
  });

  it('is left alone, with the reason, where containerd would refuse it or could not use it', async () => {
    const mirrors = `${DEBIAN}[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\n  endpoint = ["https://m"]\n`;
    await writeFile(config, mirrors);
    const r = await configureMirror({ dir, containerdConfig: config, restart });
    expect(r.containerdEdit.reason).toMatch(/refuses config_path next to .*registry\.mirrors/);
    expect(await readFile(config, 'utf8')).toBe(mirrors);
    expect(restarts).toEqual([]);
    await writeFile(config, 'version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/elsewhere"\n');
    expect((await configureMirror({ dir, containerdConfig: config })).containerdEdit.reason).toMatch(/config_path is other there: change it by hand/);
    expect((await configureMirror({ dir, containerdConfig: config, noContainerdConfig: true })).containerdEdit).toMatchObject({ action: 'none' });
  });

  it('takes the place of the empty config_path that `containerd config default` writes (1.6, 1.7), and restore brings it back', async () => {
    const text = `${DEBIAN}    [plugins."io.containerd.grpc.v1.cri".registry]\n      config_path = ""\n\n      [plugins."io.containerd.grpc.v1.cri".registry.auths]\n`;
    await writeFile(config, text);
    const report = await configureMirror({ dir, containerdConfig: config });
    expect(report.containerdEdit).toMatchObject({ action: 'set' });
    expect(registryOf(await readFile(config, 'utf8'))).toMatchObject({ config_path: dir }); // parses: no second config_path
    expect((await restoreMirror({ dir, containerdConfig: config })).containerd).toMatchObject({ action: 'restored' });
    expect(await readFile(config, 'utf8')).toBe(text);
  });

  it('finds the registry table of containerd 2, whose default config quotes its keys with single quotes', async () => {
    const text = "version = 3\n[plugins]\n  [plugins.'io.containerd.cri.v1.images']\n    [plugins.'io.containerd.cri.v1.images'.registry]\n      config_path = ''\n";
    await writeFile(config, text);
    expect((await configureMirror({ dir, containerdConfig: config })).containerdEdit).toMatchObject({ action: 'set' });
    const plugins = parse(await readFile(config, 'utf8')).plugins as Record<string, { registry: unknown }>;
    expect(plugins['io.containerd.cri.v1.images'].registry).toEqual({ config_path: dir });
  });

  it('restore keeps what the operator changed in config.toml since configure, and says what to take out by hand', async () => {
    await writeFile(config, DEBIAN);
    await configureMirror({ dir, containerdConfig: config });
    const runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]\n  SystemdCgroup = true\n';
    const edited = `${await readFile(config, 'utf8')}${runc}`;
    await writeFile(config, edited);
    const r = await restoreMirror({ dir, containerdConfig: config, restart });
    expect(r.containerd).toMatchObject({ action: 'left', detail: expect.stringMatching(/edited since: take out the two LayerMesh lines/) });
    expect(await readFile(config, 'utf8')).toBe(edited);
    expect(restarts).toEqual([]);
  });

  it('restore keeps a config.toml it created once the operator added to it', async () => {
    await configureMirror({ dir, containerdConfig: config });
    await writeFile(config, `${await readFile(config, 'utf8')}[plugins."io.containerd.grpc.v1.cri".cni]\n  bin_dir = "/opt/cni/bin"\n`);
    expect((await restoreMirror({ dir, containerdConfig: config })).containerd).toMatchObject({ action: 'left' });
    expect(await readFile(config, 'utf8')).toContain('/opt/cni/bin');
  });

  it('restore of another directory (Docker\'s) leaves the config_path configure set for containerd\'s', async () => {
    await writeFile(config, DEBIAN);
    await configureMirror({ dir, containerdConfig: config });
    const docker = join(tmp, 'docker-certs.d');
    await configureMirror({ dir: docker, containerdConfig: config, noContainerdConfig: true });
    const r = await restoreMirror({ dir: docker, containerdConfig: config });
    expect(r.containerd).toBeUndefined();
    expect(registryOf(await readFile(config, 'utf8'))).toEqual({ config_path: dir });
  });

  it('edits and restores the file a linked config.toml points to, keeping the link, and its owner', async () => {
    const real = join(tmp, 'managed.toml');
    await writeFile(real, DEBIAN);
    await chown(real, 65534, 65534);
    await symlink(real, config);
    await configureMirror({ dir, containerdConfig: config });
    expect((await lstat(config)).isSymbolicLink()).toBe(true);
    expect(registryOf(await readFile(real, 'utf8'))).toEqual({ config_path: dir });
    expect(await stat(real)).toMatchObject({ uid: 65534, gid: 65534 });
    await restoreMirror({ dir, containerdConfig: config });
    expect((await lstat(config)).isSymbolicLink()).toBe(true);
    expect(await readFile(real, 'utf8')).toBe(DEBIAN);
    expect(await stat(real)).toMatchObject({ uid: 65534, gid: 65534 }); // not the backup's, which root copied
    expect(existsSync(`${config}.layermesh-backup`)).toBe(false);
  });

  it('restores a config.toml deleted since with the mode it had (a private one stays private)', async () => {
    await writeFile(config, DEBIAN, { mode: 0o600 });
    await configureMirror({ dir, containerdConfig: config });
    await rm(config);
    await restoreMirror({ dir, containerdConfig: config });
    expect(await readFile(config, 'utf8')).toBe(DEBIAN);
    expect((await stat(config)).mode & 0o777).toBe(0o600);
  });

  it('says why config.toml was not edited', async () => {
    await writeFile(config, DEBIAN);
    await writeFile(`${config}.layermesh-backup`, 'stray');
    const report = await configureMirror({ dir, containerdConfig: config });
    expect(formatConfigureReport(report)).toContain(`${config} not edited: ${config}.layermesh-backup already exists: move it away first`);
  });

  it('restore leaves a config edited since, and its backup', async () => {
    await writeFile(config, DEBIAN);
    await configureMirror({ dir, containerdConfig: config });
    await writeFile(config, 'version = 2\n');
    const r = await restoreMirror({ dir, containerdConfig: config, restart });
    expect(r.containerd).toMatchObject({ action: 'left' });
    expect(await readFile(`${config}.layermesh-backup`, 'utf8')).toBe(DEBIAN);
    expect(r.restart?.restarted).toBe(false);
  });
});

describe('meshctl mirror configure', () => {
  it('points the mirror at the --node given when there is no --mirror-url', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [MESHCTL, '--node', 'http://127.0.0.1:5050', '--json',
      'mirror', 'configure', '--dir', dir, '--containerd-config', config]);
    const report = JSON.parse(stdout) as { mirrorUrl: string };
    expect(report.mirrorUrl).toBe('http://127.0.0.1:5050');
    expect(await readFile(join(dir, '_default', 'hosts.toml'), 'utf8')).toContain('[host."http://127.0.0.1:5050"]');
  });
});
