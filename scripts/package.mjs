// Builds the offline packages of LayerMesh from dist/ and node_modules/, with no network:
// layermesh_<version>_<arch>.deb (dpkg-deb) and layermesh_<version>_<arch>.tar.gz (the same tree, install.sh inside).
// Both carry a Node.js (the one that runs this script, or --node), so that the target needs nothing else (Debian 12's
// nodejs is 18). It must be self-contained, as nodejs.org's builds are: Debian's own links libnode, libuv, ICU, OpenSSL.
// Usage: node scripts/package.mjs [--out DIR] [--version V] [--node FILE]   (npm run package builds first)
import { execFileSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const repo = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8'));
const { values: opts } = parseArgs({ options: {
  out: { type: 'string', default: join(repo, 'build') }, version: { type: 'string', default: pkg.version }, node: { type: 'string', default: process.execPath },
} });
// The architecture is this machine's, Debian's names for Node's: the bundled node must be built for it.
const ARCH = { x64: 'amd64', arm64: 'arm64', arm: 'armhf', ppc64: 'ppc64el', s390x: 's390x' }[process.arch];
if (!ARCH) throw new Error(`no Debian architecture for Node's ${process.arch}`);
const nodeArch = elfArch(opts.node);
if (nodeArch !== ARCH) {
  throw new Error(nodeArch === undefined ? `${opts.node} is not an ELF executable`
    : `${opts.node} is built for ${nodeArch}, this machine is ${ARCH}: build the package on a machine of the target's architecture`);
}
checkSelfContained(opts.node);
for (const need of ['dist/src/node/main.js', 'node_modules', 'package-lock.json']) {
  if (!existsSync(join(repo, need))) throw new Error(`${need} is missing: run npm ci and npm run build first`);
}

const name = `layermesh_${opts.version}_${ARCH}`;
const stage = join(opts.out, name);
const lib = join(stage, 'usr/lib/layermesh');
rmSync(stage, { recursive: true, force: true });
mkdirSync(join(lib, 'bin'), { recursive: true });

// The code, and package.json beside it: it makes dist/ ES modules.
cpSync(join(repo, 'dist'), join(lib, 'dist'), { recursive: true });
writeFileSync(join(lib, 'package.json'), JSON.stringify({ name: pkg.name, version: opts.version, type: 'module', dependencies: pkg.dependencies }, null, 2));
writeFileSync(join(lib, 'VERSION'), `${opts.version}\n`);
copyProductionModules(join(lib, 'node_modules'));
copyFileSync(opts.node, join(lib, 'bin/node'));
chmodSync(join(lib, 'bin/node'), 0o755);

// Wrappers: the bundled node, found beside the wrapper without PATH (so also in an unpacked tree).
for (const [command, main] of [['meshd', 'src/node/main.js'], ['meshctl', 'src/cli/meshctl.js'], ['pussh', 'src/cli/pussh.js']]) {
  const wrapper = join(stage, 'usr/bin', command);
  mkdirSync(join(stage, 'usr/bin'), { recursive: true });
  // The entry point's #! line names node and its options: node is found first where LayerMesh carries it.
  // Run through a symlink too (Docker's cli-plugins/docker-pussh): the tree is found beside the wrapper, not the link.
  writeFileSync(wrapper, `#!/bin/sh\n# ${command}, run by the Node.js that LayerMesh carries.\nself=$0\n[ -L "$self" ] && self=$(PATH=/usr/bin:/bin readlink -f "$self")\nhere=\${self%/*}\nexport PATH="$here/../lib/layermesh/bin:$PATH"\nexec "$here/../lib/layermesh/dist/${main}" "$@"\n`);
  chmodSync(wrapper, 0o755);
  chmodSync(join(lib, 'dist', main), 0o755);
}
// `docker pussh` for every user: Docker's CLI looks for plugins in /usr/libexec/docker/cli-plugins too.
mkdirSync(join(stage, 'usr/libexec/docker/cli-plugins'), { recursive: true });
symlinkSync('../../../bin/pussh', join(stage, 'usr/libexec/docker/cli-plugins/docker-pussh'));
mkdirSync(join(stage, 'lib/systemd/system'), { recursive: true });
copyFileSync(join(repo, 'config/meshd.service'), join(stage, 'lib/systemd/system/meshd.service'));
mkdirSync(join(stage, 'etc/layermesh'), { recursive: true });
copyFileSync(join(repo, 'config/meshd.yaml'), join(stage, 'etc/layermesh/meshd.yaml'));

const deb = buildDeb();
const tarball = buildTarball();
rmSync(stage, { recursive: true });
console.log(`${deb}\n${tarball}`);

/** The Debian architecture an ELF executable is built for (its e_machine); undefined for a file that is none. */
function elfArch(file) {
  const header = Buffer.alloc(20);
  const fd = openSync(file, 'r');
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (header.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const [bits, little] = [header[4] === 2 ? 64 : 32, header[5] === 1];
  const machine = little ? header.readUInt16LE(18) : header.readUInt16BE(18);
  // Debian's name only where class and byte order are that architecture's (ppc64 big-endian, 31-bit s390 are others).
  const debian = { 0x3e: ['amd64', 64, true], 0xb7: ['arm64', 64, true], 0x28: ['armhf', 32, true], 0x15: ['ppc64el', 64, true], 0x16: ['s390x', 64, false] }[machine];
  return debian && debian[1] === bits && debian[2] === little ? debian[0] : `ELF machine ${machine}, ${bits}-bit ${little ? 'little' : 'big'}-endian`;
}

/** Refuses a node that needs a library beyond the Depends line's (it would not start on a host without it). */
function checkSelfContained(node) {
  const SYSTEM = /^(linux-vdso|linux-gate|ld-linux.*|libc|libm|libdl|libpthread|librt|libstdc\+\+|libgcc_s)\.so/;
  let listing;
  try {
    listing = execFileSync('ldd', [node], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    if (/not a dynamic executable/.test(`${err.stdout}${err.stderr}`)) return; // static: needs nothing
    throw new Error(`cannot list the libraries of ${node}: ${err.message}`);
  }
  const needs = listing.split('\n').map((line) => line.trim().split(/\s/)[0].replace(/^.*\//, '')).filter(Boolean);
  const extra = needs.filter((lib) => !SYSTEM.test(lib));
  if (extra.length > 0) {
    throw new Error(`${node} needs ${extra.join(', ')}, which a host may lack: bundle a self-contained Node.js ` +
      '(nodejs.org\'s build, unpacked anywhere) with --node FILE');
  }
}

/** The packages npm installs without --include=dev, as package-lock.json lists them (nested ones come with their parent). */
function copyProductionModules(to) {
  const lock = JSON.parse(readFileSync(join(repo, 'package-lock.json'), 'utf8'));
  let copied = 0;
  for (const [path, entry] of Object.entries(lock.packages ?? {})) {
    if (!path.startsWith('node_modules/') || path.slice('node_modules/'.length).includes('node_modules/') || entry.dev) continue;
    const from = join(repo, path);
    if (!existsSync(from)) {
      if (entry.optional) continue; // another platform's binary
      throw new Error(`${path} is in package-lock.json but not installed: run npm ci`);
    }
    cpSync(from, join(to, path.slice('node_modules/'.length)), { recursive: true, verbatimSymlinks: true });
    copied++;
  }
  if (copied === 0) throw new Error('package-lock.json lists no production packages');
}

function buildDeb() {
  const debian = join(stage, 'DEBIAN');
  mkdirSync(debian);
  const kib = execFileSync('du', ['-sk', '--exclude=DEBIAN', stage], { encoding: 'utf8' }).split('\t')[0];
  writeFileSync(join(debian, 'control'), [
    'Package: layermesh',
    `Version: ${opts.version}`,
    `Architecture: ${ARCH}`,
    'Maintainer: LayerMesh <noreply@layermesh.invalid>',
    `Installed-Size: ${kib}`,
    // What the bundled node links against (ldd): present on every Debian system.
    'Depends: libc6 (>= 2.28), libstdc++6, libgcc-s1',
    'Recommends: containerd',
    'Section: admin',
    'Priority: optional',
    `Description: ${pkg.description}`,
    ' meshd, meshctl and pussh, with the Node.js runtime they need: nothing is fetched at install time.',
    '',
  ].join('\n'));
  writeFileSync(join(debian, 'conffiles'), '/etc/layermesh/meshd.yaml\n');
  for (const script of ['postinst', 'prerm', 'postrm']) {
    copyFileSync(join(repo, 'packaging', script), join(debian, script));
    chmodSync(join(debian, script), 0o755);
  }
  const file = join(opts.out, `${name}.deb`);
  execFileSync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', stage, file], { stdio: ['ignore', 'ignore', 'inherit'] });
  rmSync(debian, { recursive: true });
  return file;
}

function buildTarball() {
  for (const script of ['install.sh', 'postinst']) copyFileSync(join(repo, 'packaging', script), join(stage, script));
  const file = join(opts.out, `${name}.tar.gz`);
  execFileSync('tar', ['-C', opts.out, '--owner=0', '--group=0', '-czf', file, name]);
  return file;
}
