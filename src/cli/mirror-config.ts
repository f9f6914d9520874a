// meshctl mirror: point containerd (certs.d hosts.toml files) and dockerd (registry-mirrors) at the local meshd,
// and undo it. Every hosts.toml written here starts with MARKER; files without it belong to someone else and are
// backed up before being replaced, and restored byte for byte.
import { constants } from 'node:fs';
import { copyFile, mkdir, readdir, readFile, rename, rmdir, stat, unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parse, stringify, type TomlTable } from 'smol-toml';
import { writeAtomically } from '../util/atomic-file.js';

export const DEFAULT_CERTS_DIR = '/etc/containerd/certs.d';
export const DEFAULT_MIRROR_URL = 'http://127.0.0.1:5000';
export const DEFAULT_CONTAINERD_CONFIG = '/etc/containerd/config.toml';
/** containerd's fallback directory: used for every registry that has no directory of its own. */
export const DEFAULT_REGISTRY = '_default';
export const HOSTS_FILE = 'hosts.toml';
export const BACKUP_SUFFIX = '.layermesh-backup';
/** First line of every hosts.toml we write: how configure and restore tell ours from anyone else's. */
export const MARKER = '# LayerMesh: written by `meshctl mirror configure`; `meshctl mirror restore` removes it.';
const DOCKER_HUB_UPSTREAM = 'https://registry-1.docker.io';
const CAPABILITIES = ['pull', 'resolve'];

// ---------------------------------------------------------------------------------------------------------------
// Names, URLs, file contents

/** `_default`, or a registry host as containerd names it: `docker.io`, `ghcr.io`, `registry.local:5000`, `[::1]:5000`. */
export function validateRegistry(name: string): string {
  if (name === DEFAULT_REGISTRY) return name;
  if (name === 'index.docker.io' || name === 'registry-1.docker.io') {
    throw new Error(`containerd names Docker Hub "docker.io": use --registry docker.io instead of ${name}`);
  }
  if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/.test(name)) {
    throw new Error(`not a registry host: ${JSON.stringify(name)} (expected for example docker.io, ghcr.io or registry.local:5000)`);
  }
  return name;
}

/** Where containerd goes when meshd does not have it: undefined for `_default` (the registry itself). */
export function upstreamOf(registry: string): string | undefined {
  if (registry === DEFAULT_REGISTRY) return undefined;
  return registry === 'docker.io' ? DOCKER_HUB_UPSTREAM : `https://${registry}`;
}

/** The meshd URL as containerd and dockerd want it: scheme, host and port, no path. */
export function normalizeMirrorUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`--mirror-url: not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--mirror-url: must be http:// or https://, got ${raw}`);
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new Error(`--mirror-url: give only scheme, host and port (meshd serves /v2/ at its root), got ${raw}`);
  }
  return url.origin;
}

export function isOurs(content: Buffer | string): boolean {
  const text = typeof content === 'string' ? content : content.subarray(0, MARKER.length + 2).toString('utf8');
  return text.startsWith(MARKER);
}

/**
 * Our hosts.toml for one registry: meshd first, then the upstream. When the registry had a hosts.toml of its own
 * (`previous`), its settings and hosts are kept after meshd, so the fallback stays what it was (its own server, CA,
 * mirrors); otherwise the upstream is `server` (none for `_default`: containerd then uses the registry itself).
 */
export function renderHostsToml(registry: string, mirrorUrl: string, previous?: TomlTable): string {
  const upstream = upstreamOf(registry);
  const meshd = { capabilities: CAPABILITIES };
  if (!previous) {
    return [
      MARKER,
      `# containerd asks meshd first, then ${upstream ?? 'the registry itself'}.`,
      ...(upstream ? [`server = ${JSON.stringify(upstream)}`] : []),
      '',
      `[host.${JSON.stringify(mirrorUrl)}]`,
      `  capabilities = ${JSON.stringify(CAPABILITIES).replace(',', ', ')}`,
      '',
    ].join('\n');
  }
  const { host: prevHosts, ...settings } = previous;
  const hosts: TomlTable = { [mirrorUrl]: meshd };
  if (prevHosts && typeof prevHosts === 'object' && !Array.isArray(prevHosts)) {
    for (const [url, h] of Object.entries(prevHosts as TomlTable)) if (url.replace(/\/+$/, '') !== mirrorUrl) hosts[url] = h;
  }
  const doc: TomlTable = { ...(settings.server === undefined && upstream ? { server: upstream } : {}), ...settings, host: hosts };
  return [
    MARKER,
    `# containerd asks meshd first, then the hosts and server of the previous ${HOSTS_FILE} (kept as ${HOSTS_FILE}${BACKUP_SUFFIX}).`,
    stringify(doc).trim(),
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// File system helpers: every error names the path

function fsError(err: unknown, action: string, path: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'EACCES' || code === 'EPERM' ? 'permission denied (run as root, or choose another --dir)'
    : code === 'EROFS' ? 'read-only file system'
    : code === 'ENOTDIR' ? 'a component of the path is not a directory'
    : code === 'EEXIST' ? 'it already exists'
    : (err as Error).message;
  return new Error(`cannot ${action} ${path}: ${why}`, { cause: err });
}

async function attempt<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw fsError(err, action, path);
  }
}

async function readMaybe(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsError(err, 'read', path);
  }
}

/** Subdirectories of the certs.d directory (registries with a directory of their own); [] when it does not exist. */
async function registryDirs(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsError(err, 'read', dir);
  }
  const dirs: string[] = [];
  for (const name of names.sort()) {
    const s = await stat(join(dir, name)).catch(() => undefined);
    if (s?.isDirectory()) dirs.push(name);
  }
  return dirs;
}

// ---------------------------------------------------------------------------------------------------------------
// containerd's config.toml: is config_path pointing at the directory?

export interface ContainerdCheck {
  config: string;
  /** set: config_path includes the directory; other: it names other directories only; missing: no config file. */
  state: 'set' | 'unset' | 'other' | 'missing' | 'unreadable' | 'invalid';
  version?: number;
  /** the TOML table that holds config_path for this config version */
  table: string;
  configPath?: string;
  /** the CRI plugin is in disabled_plugins: config_path has no effect (ctr takes --hosts-dir instead) */
  criDisabled: boolean;
  /** settings containerd refuses next to config_path; they must go */
  conflicts: string[];
  /** config files merged in through `imports`, which this check does not read */
  imports: string[];
  error?: string;
  /** the TOML to add (absent when nothing needs to change) */
  snippet?: string;
  restartNeeded: boolean;
}

const CRI_PLUGINS: Record<number, { registry: string; ids: string[] }> = {
  1: { registry: 'cri', ids: ['cri', 'io.containerd.grpc.v1.cri'] },
  2: { registry: 'io.containerd.grpc.v1.cri', ids: ['io.containerd.grpc.v1.cri', 'cri'] },
  3: { registry: 'io.containerd.cri.v1.images', ids: ['io.containerd.cri.v1.images', 'io.containerd.grpc.v1.cri'] },
};

const asTable = (v: unknown): TomlTable | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as TomlTable) : undefined);
const tomlKey = (k: string) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));
const samePath = (a: string, b: string) => resolve(a) === resolve(b);

/** Checks the text of a containerd config.toml (`path` only names it in the result). */
export function inspectContainerdConfig(text: string | undefined, dir: string, path = DEFAULT_CONTAINERD_CONFIG): ContainerdCheck {
  const base = { config: path, criDisabled: false, conflicts: [], imports: [], restartNeeded: false };
  const snippetFor = (version: number, table: string, value: string, tableExists: boolean) =>
    [
      ...(version === 2 && text === undefined ? ['version = 2', ''] : []),
      ...(tableExists ? [`# in the existing [${table}] table:`] : []),
      `[${table}]`,
      `  config_path = ${JSON.stringify(value)}`,
    ].join('\n');
  const v2Table = `plugins.${tomlKey(CRI_PLUGINS[2].registry)}.registry`;
  if (text === undefined) {
    return { ...base, state: 'missing', version: 2, table: v2Table, snippet: snippetFor(2, v2Table, dir, false), restartNeeded: true };
  }
  let doc: TomlTable;
  try {
    doc = parse(text);
  } catch (err) {
    return { ...base, state: 'invalid', table: v2Table, error: (err as Error).message.split('\n')[0] };
  }
  const version = typeof doc.version === 'number' ? doc.version : 1; // containerd reads a config without version as 1
  const cri = CRI_PLUGINS[version] ?? CRI_PLUGINS[3];
  const table = `plugins.${tomlKey(cri.registry)}.registry`;
  const registry = asTable(asTable(asTable(doc.plugins)?.[cri.registry])?.registry);
  const disabled = Array.isArray(doc.disabled_plugins) ? doc.disabled_plugins.map(String) : [];
  const criDisabled = cri.ids.some((id) => disabled.includes(id));
  const imports = Array.isArray(doc.imports) ? doc.imports.map(String) : [];
  const conflicts: string[] = [];
  if (registry) {
    const mirrors = asTable(registry.mirrors);
    if (mirrors && Object.keys(mirrors).length > 0) conflicts.push(`${table}.mirrors`);
    for (const [host, cfg] of Object.entries(asTable(registry.configs) ?? {})) {
      if (asTable(cfg)?.tls !== undefined) conflicts.push(`${table}.configs.${tomlKey(host)}.tls`);
    }
  }
  const configPath = typeof registry?.config_path === 'string' && registry.config_path !== '' ? registry.config_path : undefined;
  const paths = configPath?.split(':').filter(Boolean) ?? [];
  const state = paths.some((p) => samePath(p, dir)) ? 'set' : configPath ? 'other' : 'unset';
  // containerd tries the directories of config_path in order; ours goes first so that meshd is asked first.
  const wanted = state === 'other' ? [dir, ...paths].join(':') : dir;
  const snippet = state === 'set' || criDisabled ? undefined : snippetFor(version, table, wanted, registry !== undefined);
  return { ...base, state, version, table, configPath, criDisabled, conflicts, imports, snippet, restartNeeded: snippet !== undefined };
}

export async function checkContainerdConfig(path: string, dir: string): Promise<ContainerdCheck> {
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      const v2Table = `plugins.${tomlKey(CRI_PLUGINS[2].registry)}.registry`;
      return { config: path, state: 'unreadable', table: v2Table, criDisabled: false, conflicts: [], imports: [],
        error: fsError(err, 'read', path).message, restartNeeded: false };
    }
  }
  return inspectContainerdConfig(text, dir, path);
}

// ---------------------------------------------------------------------------------------------------------------
// dockerd

export interface DockerdAdvice {
  file: string;
  daemonJson: { 'registry-mirrors': string[] };
  /** plain HTTP to a non-loopback address needs an insecure-registries entry; Docker trusts 127.0.0.0/8 and ::1 */
  insecureRegistriesNeeded: boolean;
  limits: string;
  /** where dockerd with the containerd image store (Engine 28+) reads hosts.toml files */
  certsDir: string;
}

export function dockerdAdvice(mirrorUrl: string): DockerdAdvice {
  const { protocol, hostname } = new URL(mirrorUrl);
  const loopback = hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
  return {
    file: '/etc/docker/daemon.json',
    daemonJson: { 'registry-mirrors': [mirrorUrl] },
    insecureRegistriesNeeded: protocol === 'http:' && !loopback,
    limits: 'dockerd sends only Docker Hub pulls to its registry-mirrors: pulls from other registries do not go through meshd',
    certsDir: '/etc/docker/certs.d',
  };
}

// ---------------------------------------------------------------------------------------------------------------
// configure

export interface ConfigureOptions {
  dir?: string;
  /** registries to configure; default `_default` (every registry without a directory of its own) */
  registries?: string[];
  /** `_default` and every registry that already has a directory in `dir` (such a directory hides `_default`) */
  all?: boolean;
  mirrorUrl?: string;
  containerdConfig?: string;
}

export interface ConfiguredFile {
  registry: string;
  path: string;
  /** created: there was none; replaced: someone else's file, now backed up; updated/unchanged: ours already */
  action: 'created' | 'replaced' | 'updated' | 'unchanged';
  /** the backup of the file that was there before us (made now or by an earlier configure) */
  backup?: string;
  /** what containerd tries after meshd */
  fallback: string;
}

export interface ConfigureReport {
  dir: string;
  mirrorUrl: string;
  files: ConfiguredFile[];
  notes: string[];
  containerd: ContainerdCheck;
  ctr: string;
  dockerd: DockerdAdvice;
}

interface Plan extends ConfiguredFile {
  content: string;
  backupNeeded: boolean;
}

export async function configureMirror(opts: ConfigureOptions = {}): Promise<ConfigureReport> {
  const dir = resolve(opts.dir ?? DEFAULT_CERTS_DIR);
  const mirrorUrl = normalizeMirrorUrl(opts.mirrorUrl ?? DEFAULT_MIRROR_URL);
  if (opts.all && opts.registries?.length) throw new Error('give either --registry or --all, not both');
  const existing = await registryDirs(dir);
  const notes: string[] = [];
  let registries: string[];
  if (opts.all) {
    registries = [DEFAULT_REGISTRY];
    for (const name of existing) {
      if (name === DEFAULT_REGISTRY) continue;
      try {
        registries.push(validateRegistry(name));
      } catch {
        notes.push(`skipped ${join(dir, name)}: not a registry host name`);
      }
    }
  } else {
    registries = [...new Set((opts.registries?.length ? opts.registries : [DEFAULT_REGISTRY]).map(validateRegistry))];
  }

  // Plan everything first: nothing is written when any registry cannot be done.
  const plans: Plan[] = [];
  const problems: string[] = [];
  for (const registry of registries) {
    const path = join(dir, registry, HOSTS_FILE);
    const backupPath = path + BACKUP_SUFFIX;
    const current = await readMaybe(path);
    const backup = await readMaybe(backupPath);
    const currentOurs = current !== undefined && isOurs(current);
    if (current && !currentOurs && backup && !current.equals(backup)) {
      problems.push(`${path} is not ours and ${backupPath} already exists: move one of them away first`);
      continue;
    }
    // The settings to keep after meshd: those of the file we replace (now, or the backup of an earlier run).
    const previous = currentOurs ? backup : current;
    let previousTable: TomlTable | undefined;
    if (previous && !isOurs(previous)) {
      try {
        previousTable = parse(previous.toString('utf8'));
      } catch (err) {
        notes.push(`${current && !currentOurs ? path : backupPath} is not valid TOML (${(err as Error).message.split('\n')[0]}); ` +
          `it is backed up, and the new file falls back to ${upstreamOf(registry) ?? 'the registry itself'} only`);
      }
    }
    const content = renderHostsToml(registry, mirrorUrl, previousTable);
    const action = current === undefined ? 'created' : !currentOurs ? 'replaced' : current.equals(Buffer.from(content)) ? 'unchanged' : 'updated';
    const keepsBackup = (current !== undefined && !currentOurs) || (currentOurs && backup !== undefined);
    const fallback = previousTable ? `the hosts and server of the previous ${HOSTS_FILE}` : upstreamOf(registry) ?? 'the registry itself';
    plans.push({ registry, path, action, fallback, content, backupNeeded: current !== undefined && !currentOurs && backup === undefined,
      ...(keepsBackup ? { backup: backupPath } : {}) });
    if (current === undefined && registry !== DEFAULT_REGISTRY && existing.includes(registry)) {
      const certs = (await readdir(join(dir, registry)).catch(() => [] as string[])).filter((f) => /\.(crt|cert|key)$/.test(f));
      if (certs.length > 0) {
        notes.push(`${join(dir, registry)} holds ${certs.join(', ')} and had no ${HOSTS_FILE}: containerd loads such files by itself ` +
          `only while there is no ${HOSTS_FILE}; reference them in ${path} (ca = [...], client = [[cert, key]]) if the upstream needs them`);
      }
    }
  }
  if (problems.length > 0) throw new Error(`nothing written:\n  ${problems.join('\n  ')}`);

  for (const p of plans) {
    if (p.action === 'unchanged') continue;
    const registryDir = join(dir, p.registry);
    await attempt('create', registryDir, () => mkdir(registryDir, { recursive: true, mode: 0o755 }));
    if (p.backupNeeded) {
      const backupPath = p.path + BACKUP_SUFFIX;
      // COPYFILE_EXCL: an existing backup is never overwritten.
      await attempt('back up to', backupPath, () => copyFile(p.path, backupPath, constants.COPYFILE_EXCL));
    }
    await attempt('write', p.path, () => writeAtomically(p.path, p.content));
  }

  // A registry with a directory of its own does not use _default: say which ones escape the mirror.
  if (registries.includes(DEFAULT_REGISTRY)) {
    for (const name of existing) {
      if (registries.includes(name)) continue;
      const hosts = await readMaybe(join(dir, name, HOSTS_FILE)).catch(() => undefined);
      if (hosts && isOurs(hosts)) continue;
      notes.push(`${name} has its own directory in ${dir}, so containerd does not use ${DEFAULT_REGISTRY} for it: ` +
        `its pulls skip meshd (add --registry ${name}, or use --all)`);
    }
  }

  const containerdConfig = opts.containerdConfig ?? DEFAULT_CONTAINERD_CONFIG;
  return {
    dir,
    mirrorUrl,
    files: plans.map(({ content: _c, backupNeeded: _b, ...f }) => f),
    notes,
    containerd: await checkContainerdConfig(containerdConfig, dir),
    ctr: `ctr images pull --hosts-dir ${dir} docker.io/library/app:1`,
    dockerd: dockerdAdvice(mirrorUrl),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// restore

export interface RestoredFile {
  registry: string;
  path: string;
  /**
   * restored: the backup is back in place of ours; removed: ours is gone (there was nothing before);
   * backup-removed: a backup identical to the file in place (left by an interrupted configure) was deleted;
   * left: not ours, untouched.
   */
  action: 'restored' | 'removed' | 'backup-removed' | 'left';
  /** the registry directory was removed because it became empty */
  dirRemoved?: boolean;
  detail?: string;
}

export interface RestoreReport {
  dir: string;
  files: RestoredFile[];
}

export async function restoreMirror(opts: { dir?: string } = {}): Promise<RestoreReport> {
  const dir = resolve(opts.dir ?? DEFAULT_CERTS_DIR);
  const files: RestoredFile[] = [];
  for (const registry of await registryDirs(dir)) {
    const registryDir = join(dir, registry);
    const path = join(registryDir, HOSTS_FILE);
    const backupPath = path + BACKUP_SUFFIX;
    const current = await readMaybe(path);
    const backup = await readMaybe(backupPath);
    if (current === undefined && backup === undefined) continue;
    if (backup !== undefined && (current === undefined || isOurs(current))) {
      await attempt('restore', path, () => rename(backupPath, path));
      files.push({ registry, path, action: 'restored', detail: `from ${backupPath}` });
    } else if (current !== undefined && isOurs(current)) {
      await attempt('remove', path, () => unlink(path));
      let dirRemoved = false;
      if ((await readdir(registryDir).catch(() => ['?'])).length === 0) {
        dirRemoved = await rmdir(registryDir).then(() => true, () => false);
      }
      files.push({ registry, path, action: 'removed', dirRemoved });
    } else if (current !== undefined && backup !== undefined && current.equals(backup)) {
      await attempt('remove', backupPath, () => unlink(backupPath));
      files.push({ registry, path, action: 'backup-removed', detail: `${backupPath} was identical to ${HOSTS_FILE}` });
    } else {
      files.push({ registry, path, action: 'left', detail: backup !== undefined
        ? `not written by LayerMesh; ${backupPath} left too (move it back by hand if it is the one you want)`
        : 'not written by LayerMesh' });
    }
  }
  return { dir, files };
}

// ---------------------------------------------------------------------------------------------------------------
// Human output

export function formatConfigureReport(r: ConfigureReport): string {
  const out: string[] = [];
  for (const f of r.files) {
    const what = f.registry === DEFAULT_REGISTRY ? 'every registry without its own directory' : f.registry;
    const verb = { created: 'wrote', replaced: 'wrote', updated: 'updated', unchanged: 'unchanged' }[f.action];
    out.push(`${verb} ${f.path}: ${what} -> meshd ${r.mirrorUrl}, then ${f.fallback}`);
    if (f.action === 'replaced') out.push(`  the file that was there is saved as ${f.backup}`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);

  out.push('', 'containerd (CRI, Kubernetes):');
  const c = r.containerd;
  const indent = (s: string) => s.split('\n').map((l) => `    ${l}`).join('\n');
  if (c.criDisabled) {
    out.push(`  the CRI plugin is disabled in ${c.config}, so config_path has no effect there; ctr and other clients take the directory themselves`);
  } else switch (c.state) {
    case 'set':
      out.push(`  ${c.config} sets config_path = ${JSON.stringify(c.configPath)}: nothing to change (containerd reads ${HOSTS_FILE} at every pull)`);
      break;
    case 'missing':
      out.push(`  ${c.config} does not exist, so containerd has no config_path; create it with:`);
      break;
    case 'unset':
      out.push(`  ${c.config} does not set config_path; add:`);
      break;
    case 'other':
      out.push(`  ${c.config} sets config_path = ${JSON.stringify(c.configPath)}, without ${r.dir}; change it to:`);
      break;
    case 'unreadable':
    case 'invalid':
      out.push(`  could not check ${c.config}: ${c.error}`, `  it needs, under [${c.table}]:`, indent(`config_path = ${JSON.stringify(r.dir)}`));
      break;
  }
  if (c.snippet) {
    out.push(indent(c.snippet), '  then restart containerd (systemctl restart containerd).');
  }
  for (const k of c.conflicts) out.push(`  containerd refuses config_path while ${k} is set: move it into ${HOSTS_FILE} files and remove it`);
  if (c.imports.length > 0) out.push(`  (files merged through imports are not checked: ${c.imports.join(', ')})`);

  out.push('', 'ctr:', `  ${r.ctr}`);

  const d = r.dockerd;
  out.push('', 'dockerd without the containerd image store: add to /etc/docker/daemon.json', `  {"registry-mirrors": [${d.daemonJson['registry-mirrors'].map((u) => JSON.stringify(u)).join(', ')}]}`,
    '  then reload dockerd (systemctl reload docker).', `  Limit: ${d.limits}.`);
  out.push(d.insecureRegistriesNeeded
    ? `  ${new URL(r.mirrorUrl).host} is plain HTTP off loopback: add it to "insecure-registries" too.`
    : '  No "insecure-registries" entry is needed: Docker trusts loopback addresses.');
  out.push(`dockerd with the containerd image store (Engine 28 or later) reads ${HOSTS_FILE} files from ${d.certsDir} instead:`,
    `  meshctl mirror configure --dir ${d.certsDir}`);
  return out.join('\n');
}

export function formatRestoreReport(r: RestoreReport): string {
  if (r.files.length === 0) return `nothing to restore in ${r.dir}`;
  return r.files.map((f) => {
    switch (f.action) {
      case 'restored': return `restored ${f.path} ${f.detail}`;
      case 'removed': return `removed ${f.path}${f.dirRemoved ? ` and the empty ${join(r.dir, f.registry)}` : ''}`;
      case 'backup-removed': return `removed ${f.path}${BACKUP_SUFFIX}: ${f.detail}`;
      case 'left': return `left ${f.path}: ${f.detail}`;
    }
  }).join('\n');
}
