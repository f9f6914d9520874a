// meshctl mirror configure / restore: hosts.toml files in a temp certs.d, backups, and the containerd config check.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse } from 'smol-toml';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { configureMirror } from './configure.js';
import { checkContainerdConfig, inspectContainerdConfig } from './containerd-config.js';
import { dockerdAdvice } from './dockerd.js';
import { MirrorConfigError, MirrorConflictError, MirrorFsError, MirrorUsageError } from './errors.js';
import { formatConfigureReport, formatRestoreReport } from './format.js';
import { BACKUP_SUFFIX, MARKER, validateRegistry } from './hosts-toml.js';
import { restoreMirror } from './restore.js';

const MESHD = 'http://127.0.0.1:5000';
const MESHCTL = new URL('../../../dist/src/cli/meshctl.js', import.meta.url).pathname;

// Someone else's hosts.toml, with bytes a rewrite would not preserve (CRLF, comment, no final newline).
const FOREIGN = '# ours, hands off\r\nserver = "https://registry.internal:5000"\r\nca = "ca.crt"\r\n\r\n' +
  '[host."https://cache.internal"]\r\n  capabilities = ["pull"]';

let tmp: string;
let dir: string;
let containerdConfig: string;
beforeEach(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'mirror-config-'));
  dir = join(tmp, 'certs.d');
  containerdConfig = join(tmp, 'config.toml'); // absent unless a test writes it
});
afterEach(async () => {
  await rm(tmp, { recursive: true, force: true });
});

const configure = (extra: Parameters<typeof configureMirror>[0] = {}) => configureMirror({ dir, containerdConfig, ...extra });
const hostsOf = (registry: string) => join(dir, registry, 'hosts.toml');

describe('meshctl mirror configure', () => {
  it('writes _default/hosts.toml pointing at meshd, with no server line', async () => {
    const report = await configure();
    const text = await readFile(hostsOf('_default'), 'utf8');
    expect(text.split('\n')[0]).toBe(MARKER);
    const doc = parse(text) as { server?: string; host: Record<string, { capabilities: string[] }> };
    expect(Object.keys(doc.host)).toEqual([MESHD]);
    expect(doc.host[MESHD].capabilities).toEqual(['pull', 'resolve']);
    expect(doc.server).toBeUndefined();
    expect(report.files).toEqual([{ registry: '_default', path: hostsOf('_default'), action: 'created', fallback: 'the registry itself' }]);
    expect(await readdir(dir)).toEqual(['_default']);
    expect(formatConfigureReport(report)).toContain(`wrote ${hostsOf('_default')}`);
  });

  it('writes docker.io/hosts.toml with registry-1.docker.io as server, and other registries with their own', async () => {
    const report = await configure({ registries: ['docker.io', 'ghcr.io:443'], mirrorUrl: 'http://10.0.0.5:5000/' });
    const docker = parse(await readFile(hostsOf('docker.io'), 'utf8')) as { server: string; host: Record<string, { capabilities: string[] }> };
    expect(docker.server).toBe('https://registry-1.docker.io');
    expect(docker.host['http://10.0.0.5:5000'].capabilities).toEqual(['pull', 'resolve']);
    const ghcr = parse(await readFile(hostsOf('ghcr.io:443'), 'utf8')) as { server: string };
    expect(ghcr.server).toBe('https://ghcr.io:443');
    expect(existsSync(join(dir, '_default'))).toBe(false);
    expect(report.mirrorUrl).toBe('http://10.0.0.5:5000');
    expect(report.dockerd.insecureRegistriesNeeded).toBe(true);
  });

  it('backs up a foreign hosts.toml, keeps its settings after meshd, and restores it byte for byte', async () => {
    await mkdir(join(dir, 'docker.io'), { recursive: true });
    await writeFile(hostsOf('docker.io'), FOREIGN, { mode: 0o600 });
    const report = await configure({ registries: ['docker.io'] });
    const backup = hostsOf('docker.io') + BACKUP_SUFFIX;
    expect(report.files[0]).toMatchObject({ action: 'replaced', backup });
    expect(await readFile(backup, 'utf8')).toBe(FOREIGN);
    const doc = parse(await readFile(hostsOf('docker.io'), 'utf8')) as { server: string; ca: string; host: Record<string, unknown> };
    expect(Object.keys(doc.host)).toEqual([MESHD, 'https://cache.internal']); // meshd first, theirs after
    expect(doc.server).toBe('https://registry.internal:5000');
    expect(doc.ca).toBe('ca.crt');

    const restored = await restoreMirror({ dir, containerdConfig });
    expect(restored.files).toEqual([{ registry: 'docker.io', path: hostsOf('docker.io'), action: 'restored', detail: `from ${backup}` }]);
    expect(await readFile(hostsOf('docker.io'), 'utf8')).toBe(FOREIGN);
    expect(await readdir(join(dir, 'docker.io'))).toEqual(['hosts.toml']);
  });

  it('is idempotent: a second run changes nothing and makes no second backup', async () => {
    await mkdir(join(dir, '_default'), { recursive: true });
    await writeFile(hostsOf('_default'), FOREIGN);
    await configure();
    const first = await readFile(hostsOf('_default'));
    const again = await configure();
    expect(again.files[0]).toMatchObject({ action: 'unchanged', backup: hostsOf('_default') + BACKUP_SUFFIX });
    expect((await readdir(join(dir, '_default'))).sort()).toEqual(['hosts.toml', `hosts.toml${BACKUP_SUFFIX}`]);
    expect(await readFile(hostsOf('_default'))).toEqual(first);
    expect(await readFile(hostsOf('_default') + BACKUP_SUFFIX, 'utf8')).toBe(FOREIGN);
    // A new mirror URL rewrites our file, still from the original backup.
    const moved = await configure({ mirrorUrl: 'http://127.0.0.1:5999' });
    expect(moved.files[0].action).toBe('updated');
    expect(Object.keys((parse(await readFile(hostsOf('_default'), 'utf8')) as { host: object }).host))
      .toEqual(['http://127.0.0.1:5999', 'https://cache.internal']);
    await restoreMirror({ dir, containerdConfig });
    expect(await readFile(hostsOf('_default'), 'utf8')).toBe(FOREIGN);
  });

  it('refuses, writing nothing, when a foreign file and a different backup are both there', async () => {
    await mkdir(join(dir, 'docker.io'), { recursive: true });
    await writeFile(hostsOf('docker.io'), FOREIGN);
    await writeFile(hostsOf('docker.io') + BACKUP_SUFFIX, 'server = "https://old"\n');
    await expect(configure({ registries: ['_default', 'docker.io'] })).rejects.toThrow(/nothing written:[\s\S]*already exists/);
    expect(existsSync(join(dir, '_default'))).toBe(false);
    expect(await readFile(hostsOf('docker.io'), 'utf8')).toBe(FOREIGN);
  });

  it('--all also takes registries that have a directory (which hides _default); by default it says so', async () => {
    await mkdir(join(dir, 'quay.io'), { recursive: true });
    await writeFile(join(dir, 'quay.io', 'ca.crt'), 'cert');
    const plain = await configure();
    expect(plain.files.map((f) => f.registry)).toEqual(['_default']);
    expect(plain.notes.join('\n')).toMatch(/quay\.io has its own directory.*--registry quay\.io, or use --all/);
    const all = await configure({ all: true });
    expect(all.files.map((f) => [f.registry, f.action])).toEqual([['_default', 'unchanged'], ['quay.io', 'created']]);
    expect((parse(await readFile(hostsOf('quay.io'), 'utf8')) as { server: string }).server).toBe('https://quay.io');
    await expect(configure({ all: true, registries: ['docker.io'] })).rejects.toThrow(/either --registry or --all/);
  });

  it('names the certificates of a registry directory in its new hosts.toml: containerd loads them only while it has none', async () => {
    const quay = join(dir, 'quay.io');
    await mkdir(quay, { recursive: true });
    for (const f of ['ca.crt', 'client.cert', 'client.key', 'lonely.cert']) await writeFile(join(quay, f), 'pem');
    const report = await configure({ registries: ['quay.io'] });
    expect(parse(await readFile(hostsOf('quay.io'), 'utf8'))).toMatchObject({
      server: 'https://quay.io', ca: [join(quay, 'ca.crt')], client: [[join(quay, 'client.cert'), join(quay, 'client.key')]],
    });
    expect(report.notes.join('\n')).toMatch(/lonely\.cert has no key of its name/);
    expect((await configure({ registries: ['quay.io'] })).files[0].action).toBe('unchanged');
  });

  it('writes into the `host_port_` directory containerd reads for a registry with a port, and names it as a registry', async () => {
    const underscored = join(dir, 'registry.local_5000_');
    await mkdir(underscored, { recursive: true });
    expect((await configure()).notes.join('\n')).toMatch(/add --registry registry\.local:5000, or use --all/);
    const report = await configure({ registries: ['registry.local:5000'] });
    expect(report.files.map((f) => f.path)).toEqual([join(underscored, 'hosts.toml')]);
    expect(parse(await readFile(join(underscored, 'hosts.toml'), 'utf8')).server).toBe('https://registry.local:5000');
    expect(existsSync(join(dir, 'registry.local:5000'))).toBe(false);
    expect((await configure({ all: true })).files.map((f) => [f.registry, f.action])).toContainEqual(['registry.local:5000', 'unchanged']);
    // Both spellings there: one registry, configured once, where containerd looks first.
    await mkdir(join(dir, 'registry.local:5000'));
    expect((await configure({ all: true })).files.filter((f) => f.registry === 'registry.local:5000').map((f) => f.path)).toEqual([join(underscored, 'hosts.toml')]);
  });

  it('leaves a registry on loopback its own way to be reached (plain HTTP too), not https only', async () => {
    await configure({ registries: ['localhost:5001', '127.0.0.1:5002'] });
    for (const r of ['localhost:5001', '127.0.0.1:5002']) expect(parse(await readFile(hostsOf(r), 'utf8')).server).toBeUndefined();
  });

  it('says when the mirror does not answer, or refuses this host\'s reads (containerd sends it no token)', async () => {
    const answering = (status: number) => new Promise<{ url: string; close: () => void }>((resolve) => {
      const server = createServer((_req, res) => res.writeHead(status).end()).listen(0, '127.0.0.1', () =>
        resolve({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() }));
    });
    const [ok, refusing] = [await answering(200), await answering(401)];
    try {
      expect((await configure({ mirrorUrl: ok.url })).notes.join('\n')).not.toMatch(/does not answer|refuses/);
      expect((await configure({ mirrorUrl: refusing.url })).notes.join('\n')).toMatch(/refuses this host's reads \(HTTP 401\).*--registry-allow/);
    } finally {
      ok.close();
      refusing.close();
    }
    expect((await configure({ mirrorUrl: ok.url })).notes.join('\n')).toMatch(/does not answer at .* now \(.*ECONNREFUSED.*\)/);
  });

  it('rejects bad registry names and mirror URLs', async () => {
    expect(() => validateRegistry('../etc')).toThrow(/not a registry host/);
    expect(() => validateRegistry('index.docker.io')).toThrow(/docker\.io/);
    expect(validateRegistry('[::1]:5000')).toBe('[::1]:5000');
    await expect(configure({ registries: ['a/b'] })).rejects.toThrow(/not a registry host/);
    await expect(configure({ mirrorUrl: 'ftp://x' })).rejects.toThrow(/http/);
    await expect(configure({ mirrorUrl: 'http://127.0.0.1:5000/v2' })).rejects.toThrow(/scheme, host and port/);
  });

  it('names the path it cannot use', async () => {
    await mkdir(dir);
    await writeFile(join(dir, '_default'), ''); // a file where the registry directory should be
    await expect(configure()).rejects.toThrow(
      `cannot read ${join(dir, '_default', 'hosts.toml')}: a component of the path is not a directory`);
  });

  it('fails only with MirrorConfigErrors: usage, file system (with path and code), conflict', async () => {
    const failure = (p: Promise<unknown>) => p.then(() => undefined, (e: unknown) => e);
    expect(await failure(configure({ registries: ['a/b'] }))).toBeInstanceOf(MirrorUsageError);
    expect(await failure(configure({ all: true, registries: ['docker.io'] }))).toBeInstanceOf(MirrorUsageError);
    await mkdir(dir);
    await writeFile(join(dir, '_default'), '');
    expect(await failure(configure())).toMatchObject({ path: join(dir, '_default', 'hosts.toml'), code: 'ENOTDIR' });
    expect(await failure(restoreMirror({ dir: join(dir, '_default') }))).toBeInstanceOf(MirrorFsError);
    await mkdir(join(dir, 'docker.io'));
    await writeFile(hostsOf('docker.io'), FOREIGN);
    await writeFile(hostsOf('docker.io') + BACKUP_SUFFIX, 'server = "https://old"\n');
    const conflict = await failure(configure({ registries: ['docker.io'] }));
    expect(conflict).toBeInstanceOf(MirrorConflictError);
    expect(conflict).toBeInstanceOf(MirrorConfigError);
    expect((conflict as MirrorConflictError).problems).toHaveLength(1);
  });

  it('prints the daemon.json entry and the Docker Hub limit', () => {
    const d = dockerdAdvice(MESHD);
    expect(d.daemonJson).toEqual({ 'registry-mirrors': [MESHD] });
    expect(d.insecureRegistriesNeeded).toBe(false);
    expect(d.limits).toMatch(/only Docker Hub/);
  });
});

describe('meshctl mirror restore', () => {
  it('removes our files where nothing was backed up, and their directory once empty; leaves foreign files alone', async () => {
    await mkdir(join(dir, 'ghcr.io'), { recursive: true });
    await writeFile(join(dir, 'ghcr.io', 'ca.crt'), 'cert');
    await mkdir(join(dir, 'quay.io'), { recursive: true });
    await writeFile(hostsOf('quay.io'), FOREIGN);
    await configure({ registries: ['_default', 'ghcr.io'] });
    const report = await restoreMirror({ dir, containerdConfig });
    expect(report.files).toEqual([
      { registry: '_default', path: hostsOf('_default'), action: 'removed', dirRemoved: true },
      { registry: 'ghcr.io', path: hostsOf('ghcr.io'), action: 'removed', dirRemoved: false },
      { registry: 'quay.io', path: hostsOf('quay.io'), action: 'left', detail: 'not written by LayerMesh' },
    ]);
    expect((await readdir(dir)).sort()).toEqual(['ghcr.io', 'quay.io']);
    expect(await readdir(join(dir, 'ghcr.io'))).toEqual(['ca.crt']);
    expect(await readFile(hostsOf('quay.io'), 'utf8')).toBe(FOREIGN);
    expect(formatRestoreReport(report)).toContain(`removed ${hostsOf('_default')} and the empty ${join(dir, '_default')}`);
    expect(formatRestoreReport(await restoreMirror({ dir: join(tmp, 'none') }))).toMatch(/nothing to restore/);
  });
});

describe("containerd's config_path", () => {
  const DEBIAN = 'version = 2\n\n[plugins]\n  [plugins."io.containerd.grpc.v1.cri"]\n' +
    '    [plugins."io.containerd.grpc.v1.cri".cni]\n      bin_dir = "/usr/lib/cni"\n';
  const CERTS = '/etc/containerd/certs.d';

  it('detects it unset and prints the snippet to add', () => {
    const c = inspectContainerdConfig(DEBIAN, CERTS);
    expect(c).toMatchObject({ state: 'unset', version: 2, restartNeeded: true, criDisabled: false });
    expect(c.snippet).toBe('[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "/etc/containerd/certs.d"');
    // The snippet is valid TOML and, appended, sets it.
    expect(inspectContainerdConfig(`${DEBIAN}\n${c.snippet}\n`, CERTS).state).toBe('set');
  });

  it('detects it set, also as one of several directories', () => {
    const set = (v: string) => `version = 2\n[plugins."io.containerd.grpc.v1.cri".registry]\n  config_path = "${v}"\n`;
    expect(inspectContainerdConfig(set(CERTS), CERTS)).toMatchObject({ state: 'set', restartNeeded: false, snippet: undefined });
    expect(inspectContainerdConfig(set(`${CERTS}/`), CERTS).state).toBe('set');
    expect(inspectContainerdConfig(set(`${CERTS}:/etc/docker/certs.d`), CERTS).state).toBe('set');
    const other = inspectContainerdConfig(set('/etc/docker/certs.d'), CERTS);
    expect(other.state).toBe('other');
    // After the operator's: a registry set up there keeps its certificates (ours, first, would answer for it with _default).
    expect(other.snippet).toContain(`config_path = "/etc/docker/certs.d:${CERTS}"`);
    expect(other.snippet).toContain('# in the existing');
    expect(inspectContainerdConfig(set(''), CERTS).state).toBe('unset');
  });

  it('reads version 1 and 3 tables, CRI disabled, conflicting mirrors, a missing or broken file', async () => {
    expect(inspectContainerdConfig(`[plugins.cri.registry]\nconfig_path = "${CERTS}"\n`, CERTS)).toMatchObject({ state: 'set', version: 1 });
    expect(inspectContainerdConfig(`version = 3\n[plugins."io.containerd.cri.v1.images".registry]\nconfig_path = "${CERTS}"\n`, CERTS).state).toBe('set');
    expect(inspectContainerdConfig('version = 2\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n', CERTS))
      .toMatchObject({ state: 'unset', criDisabled: true, snippet: undefined });
    const mirrors = inspectContainerdConfig('version = 2\n[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]\nendpoint = ["https://x"]\n', CERTS);
    expect(mirrors.conflicts).toEqual(['plugins."io.containerd.grpc.v1.cri".registry.mirrors']);
    const missing = await checkContainerdConfig(join(tmp, 'absent.toml'), CERTS);
    expect(missing).toMatchObject({ state: 'missing', restartNeeded: true });
    expect(missing.snippet?.startsWith('version = 2\n')).toBe(true);
    expect(inspectContainerdConfig('version = = 2', CERTS).state).toBe('invalid');
  });

  it('configure reports it, against the file given', async () => {
    await writeFile(containerdConfig, DEBIAN);
    const report = await configure();
    expect(report.containerd).toMatchObject({ config: containerdConfig, state: 'unset' });
    const text = formatConfigureReport(report);
    expect(text).toContain(`config_path = "${dir}"`);
    expect(text).toContain('restart containerd');
    expect(text).toContain(`ctr images pull --hosts-dir ${dir}`);
    expect(text).toContain('{"registry-mirrors": ["http://127.0.0.1:5000"]}');
  });
});

describe('the built CLI', () => {
  const run = promisify(execFile);

  it('meshctl mirror configure --dir, then restore, with human and --json output', async () => {
    const base = [MESHCTL, 'mirror'];
    const human = await run(process.execPath, [...base, 'configure', '--dir', dir, '--containerd-config', containerdConfig]);
    expect(human.stdout).toContain(`wrote ${hostsOf('_default')}`);
    expect(human.stdout).toContain('config_path');
    expect(human.stdout).toContain('registry-mirrors');
    expect(human.stderr).toBe('');
    const json = JSON.parse((await run(process.execPath, [MESHCTL, '--json', 'mirror', 'configure', '--dir', dir,
      '--registry', 'docker.io', '--containerd-config', containerdConfig])).stdout);
    expect(json.files).toEqual([{ registry: 'docker.io', path: hostsOf('docker.io'), action: 'created', fallback: 'https://registry-1.docker.io' }]);
    // The first run created the missing config.toml with config_path; restore removes it.
    expect(human.stdout).toContain(`created ${containerdConfig} with config_path = "${dir}"`);
    expect(json.containerd.state).toBe('set');
    const restore = await run(process.execPath, [...base, 'restore', '--dir', dir, '--containerd-config', containerdConfig]);
    expect(restore.stdout).toContain(`removed ${hostsOf('_default')}`);
    expect(restore.stdout).toContain(`removed ${containerdConfig}`);
    expect(existsSync(containerdConfig)).toBe(false);
    expect(await readdir(dir)).toEqual([]);
    // Errors: exit status 2 and a message naming the path.
    await writeFile(join(tmp, 'file'), '');
    const err = await run(process.execPath, [...base, 'configure', '--dir', join(tmp, 'file')]).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 2, stderr: expect.stringContaining(`meshctl: cannot read ${join(tmp, 'file')}`) });
  });

  // As root, the CLI runs as nobody (setpriv) to meet a directory it may not write.
  const root = process.getuid?.() === 0;
  it.skipIf(root && !['/usr/bin/setpriv', '/bin/setpriv'].some(existsSync))('permission denied names the path', async () => {
    await mkdir(dir);
    await chmod(tmp, 0o755);
    if (!root) await chmod(dir, 0o555);
    const args = [MESHCTL, 'mirror', 'configure', '--dir', dir, '--containerd-config', containerdConfig];
    const [cmd, argv] = root ? ['setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, ...args]] : [process.execPath, args];
    const err = await run(cmd, argv).then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ code: 2, stderr: `meshctl: cannot create ${join(dir, '_default')}: permission denied (run as root, or choose another --dir)\n` });
    expect(await readdir(dir)).toEqual([]);
  });
});
