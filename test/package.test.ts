// The offline packages, for real: scripts/package.mjs builds the .deb and the tarball; dpkg installs the .deb
// into a fresh root (--root, its maintainer scripts run chrootless against DPKG_ROOT), where the packaged meshd
// runs on its bundled node with no node on PATH, in a network namespace with nothing but loopback; skopeo pushes
// an image and pulls it back. An upgrade keeps the identity, the content and a changed conffile; a purge removes
// them. The tarball's install.sh installs the same tree. Heavy: run under flock /tmp/lm-heavy.lock.
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { appendFile, chmod, chown, lstat, mkdir, mkdtemp, readFile, readlink, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from './helpers/apt.js';
import { nodeOptionsOf, spawnMeshd } from './helpers/meshd.js';
import { buildImage, type BuiltImage } from './helpers/oci-image.js';
import { outcomeOf, run } from './helpers/run.js';
import { builtEntryPoints, repoRoot } from './fleet/layout.js';

const VERSION = (JSON.parse(await readFile(join(repoRoot(), 'package.json'), 'utf8')) as { version: string }).version;
const NS = `lm-pkg-${randomUUID().slice(0, 8)}`;
let work: string;
let image: BuiltImage;

/** Builds the packages of `version` into `out`; returns the .deb and the tarball. */
async function buildPackages(version: string, out: string): Promise<{ deb: string; tarball: string }> {
  const [deb, tarball] = (await run(process.execPath, [join(repoRoot(), 'scripts/package.mjs'), '--out', out, '--version', version], { timeoutMs: 300_000 })).trim().split('\n');
  return { deb, tarball };
}

const dpkg = (root: string, args: string[]) => run('dpkg', [`--root=${root}`, '--force-script-chrootless', '--force-depends', ...args]);

/** A root dpkg can install into: its database and the files groupadd --prefix edits. */
async function freshRoot(dir: string): Promise<string> {
  await mkdir(join(dir, 'var/lib/dpkg/info'), { recursive: true });
  await mkdir(join(dir, 'var/lib/dpkg/updates'), { recursive: true });
  await mkdir(join(dir, 'etc'), { recursive: true });
  await writeFile(join(dir, 'var/lib/dpkg/status'), '');
  await writeFile(join(dir, 'etc/group'), 'root:x:0:\n');
  await writeFile(join(dir, 'etc/gshadow'), 'root:*::\n');
  return dir;
}

/** The installed meshd in the namespace, PATH holding no node; stopped (expecting exit 0) when `use` is done. */
async function withMeshd<T>(root: string, use: (registry: string, peerId: string) => Promise<T>): Promise<T> {
  const emptyPath = join(work, 'no-node');
  await mkdir(emptyPath, { recursive: true });
  const args = ['--data-dir', join(root, 'var/lib/layermesh'), '--store', 'fs', '--registry-addr', '127.0.0.1:5000', '--peer-addr', '127.0.0.1:5001', '--p2p-listen', '/ip4/127.0.0.1/tcp/4001'];
  const m = spawnMeshd(args, { command: ['ip', 'netns', 'exec', NS, 'env', '-i', `PATH=${emptyPath}`, join(root, 'usr/bin/meshd')], name: 'packaged meshd' });
  let result: T;
  try {
    const ready = await m.ready;
    // The wrapper runs the carried node with the options on meshd's #! line.
    const cmdline = (await readFile(`/proc/${m.proc.pid}/cmdline`, 'utf8')).split('\0');
    expect(cmdline).toEqual(expect.arrayContaining(nodeOptionsOf(builtEntryPoints().meshd)));
    result = await use(ready.registry.replace(/^http:\/\//, ''), ready.peerId!);
  } catch (err) {
    m.proc.kill('SIGKILL');
    await m.exited;
    throw err;
  }
  m.proc.kill('SIGTERM');
  expect(await m.exited).toBe(0);
  return result;
}

const inNs = (cmd: string[]) => run('ip', ['netns', 'exec', NS, ...cmd]);
const manifestDigest = async (host: string) =>
  (await inNs(['skopeo', '--insecure-policy', 'inspect', '--tls-verify=false', '--format', '{{.Digest}}', `docker://${host}/app:1`])).trim();

describe('the offline package', () => {
  beforeAll(async () => {
    await ensurePackages({ skopeo: 'skopeo', 'dpkg-deb': 'dpkg', ip: 'iproute2', groupadd: 'passwd' });
    work = await mkdtemp(join(tmpdir(), 'layermesh-package-'));
    image = buildImage({ layerSizes: [300_000, 50_000], dir: join(work, 'image') });
    await run('ip', ['netns', 'add', NS]);
    await inNs(['ip', 'link', 'set', 'lo', 'up']);
  }, 120_000);

  afterAll(async () => {
    await run('ip', ['netns', 'del', NS]).catch(() => undefined);
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('refuses to carry a Node.js that needs a library a host may lack (as Debian\'s own nodejs does), naming it', async () => {
    // gpgv stands in for such a node: it is on every Debian system, and links libgcrypt.
    await ensurePackages({ gpgv: 'gpgv' });
    const out = join(work, 'refused');
    const r = await outcomeOf(process.execPath, [join(repoRoot(), 'scripts/package.mjs'), '--out', out, '--node', '/usr/bin/gpgv']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/\/usr\/bin\/gpgv needs .*libgcrypt\.so\.20.*bundle a self-contained Node\.js/);
    expect(existsSync(out), 'nothing built').toBe(false);
    // A node for another machine (its ELF header alone: s390x, which runs no test here), and a file that is no executable.
    const s390x = join(work, 'node-s390x');
    const header = Buffer.alloc(64);
    header.write('\x7fELF', 0, 'latin1');
    header[4] = 2; // 64-bit
    header[5] = 2; // big-endian
    header.writeUInt16BE(0x16, 18); // S/390
    await writeFile(s390x, header);
    const foreign = await outcomeOf(process.execPath, [join(repoRoot(), 'scripts/package.mjs'), '--out', out, '--node', s390x]);
    expect(foreign.stderr).toMatch(/node-s390x is built for s390x, this machine is [a-z0-9]+: build the package on a machine of the target's/);
    const text = await outcomeOf(process.execPath, [join(repoRoot(), 'scripts/package.mjs'), '--out', out, '--node', join(repoRoot(), 'README.md')]);
    expect(text.stderr).toMatch(/README\.md is not an ELF executable/);
    expect(existsSync(out), 'nothing built').toBe(false);
  });

  it('installs with dpkg, serves offline on its own node, upgrades keeping identity and content, purges', async () => {
    const first = await buildPackages(VERSION, join(work, 'v1'));
    expect(first.deb).toMatch(new RegExp(`layermesh_${VERSION.replace(/\./g, '\\.')}_[a-z0-9]+\\.deb$`));
    const info = await run('dpkg-deb', ['--field', first.deb]);
    expect(info).toMatch(/^Recommends: containerd$/m);
    const root = await freshRoot(join(work, 'root'));
    await dpkg(root, ['-i', first.deb]);
    expect(await readFile(join(root, 'etc/group'), 'utf8')).toMatch(/^layermesh:x:\d+:$/m);
    expect(await readlink(join(root, 'usr/libexec/docker/cli-plugins/docker-pussh')), 'docker pussh for every user').toBe('../../../bin/pussh');
    expect(existsSync(join(root, 'var/lib/layermesh'))).toBe(true);
    expect(await dpkg(root, ['--status', 'layermesh'])).toMatch(/^Conffiles:\n \/etc\/layermesh\/meshd\.yaml [0-9a-f]{32}$/m);
    await appendFile(join(root, 'etc/layermesh/meshd.yaml'), '# changed by the admin\n');

    const before = await withMeshd(root, async (host, peerId) => {
      await inNs(['skopeo', '--insecure-policy', 'copy', '--dest-tls-verify=false', `oci:${image.dir}:${image.tag}`, `docker://${host}/app:1`]);
      await inNs(['skopeo', '--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${host}/app:1`, `oci:${join(work, 'pulled')}:1`]);
      expect(await manifestDigest(host)).toBe(image.digest);
      return peerId;
    });

    const second = await buildPackages(`${VERSION}+1`, join(work, 'v2'));
    await dpkg(root, ['-i', second.deb]);
    expect((await readFile(join(root, 'usr/lib/layermesh/VERSION'), 'utf8')).trim()).toBe(`${VERSION}+1`);
    expect(await readFile(join(root, 'etc/layermesh/meshd.yaml'), 'utf8')).toContain('# changed by the admin');
    await withMeshd(root, async (host, peerId) => {
      expect(peerId).toBe(before);
      expect(await manifestDigest(host)).toBe(image.digest);
    });

    // `systemctl enable meshd` made this link; once the package is purged nothing else would remove it.
    const enabled = join(root, 'etc/systemd/system/multi-user.target.wants/meshd.service');
    await mkdir(dirname(enabled), { recursive: true });
    await symlink('/lib/systemd/system/meshd.service', enabled);
    await dpkg(root, ['--purge', 'layermesh']);
    expect(existsSync(join(root, 'var/lib/layermesh'))).toBe(false);
    expect(await lstat(enabled).then(() => true, () => false), 'the unit still enabled after a purge').toBe(false);
    expect(existsSync(join(root, 'usr/bin/meshd'))).toBe(false);
    expect(existsSync(join(root, 'etc/layermesh/meshd.yaml'))).toBe(false);

    // The tarball: the same tree, installed by its install.sh with no dpkg; a second run keeps the configuration.
    // Unpacked by an unprivileged user, as a tarball often is: what it installs is root's all the same.
    const unpacked = join(work, 'tar');
    await mkdir(unpacked);
    await chown(unpacked, 65534, 65534);
    await chmod(work, 0o755); // mkdtemp's 0700 would keep the user out
    await run('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'tar', '-C', unpacked, '-xzf', second.tarball]);
    const tarRoot = await freshRoot(join(work, 'tar-root'));
    const tree = join(unpacked, `layermesh_${VERSION}+1_${info.match(/^Architecture: (\S+)$/m)![1]}`);
    const installer = join(tree, 'install.sh');
    // With PATH as `su` without `-` leaves it, sbin's groupadd not on it.
    const install = () => run('env', ['PATH=/usr/bin:/bin', `DPKG_ROOT=${tarRoot}`, installer]);
    expect(await install()).toContain(`(${VERSION}+1)`);
    const installed = ['usr/lib/layermesh', 'usr/bin/meshd', 'usr/bin/meshctl', 'usr/bin/pussh', 'lib/systemd/system/meshd.service'].map((p) => join(tarRoot, p));
    expect(await run('find', [...installed, '(', '!', '-user', 'root', '-o', '-perm', '/022', ')', '!', '-type', 'l']), 'files not root\'s, or writable by others').toBe('');
    await appendFile(join(tarRoot, 'etc/layermesh/meshd.yaml'), '# changed by the admin\n');
    // A copy that fails leaves the installed version whole.
    await rename(join(tree, 'usr/lib/layermesh'), join(tree, 'usr/lib/gone'));
    await expect(install()).rejects.toThrow();
    expect((await readFile(join(tarRoot, 'usr/lib/layermesh/VERSION'), 'utf8')).trim()).toBe(`${VERSION}+1`);
    await rename(join(tree, 'usr/lib/gone'), join(tree, 'usr/lib/layermesh'));
    await install();
    expect(await readFile(join(tarRoot, 'etc/layermesh/meshd.yaml'), 'utf8')).toContain('# changed by the admin');
    expect(await run('find', [join(tarRoot, 'usr/lib'), '-maxdepth', '1', '-name', '.layermesh*']), 'nothing left beside the install').toBe('');
    expect(await readFile(join(tarRoot, 'etc/group'), 'utf8')).toMatch(/^layermesh:x:\d+:$/m);
    await withMeshd(tarRoot, async (host) => {
      const limits = await inNs(['env', '-i', `PATH=${join(work, 'no-node')}`, join(tarRoot, 'usr/bin/meshctl'), '--node', `http://${host}`, '--json', 'limit']);
      expect(JSON.parse(limits)).toEqual({});
    });
    // As a Docker CLI plugin, for every user: Docker runs the link the package puts in its system plugin directory,
    // which must find the wrapper's tree.
    const plugin = join(tarRoot, 'usr/libexec/docker/cli-plugins/docker-pussh');
    const metadata = await run('env', ['-i', `PATH=${join(work, 'no-node')}`, plugin, 'docker-cli-plugin-metadata']);
    expect(JSON.parse(metadata)).toMatchObject({ SchemaVersion: '0.1.0' });
  }, 600_000);
});
