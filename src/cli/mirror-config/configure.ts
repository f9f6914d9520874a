// `meshctl mirror configure`: writes certs.d/<registry>/hosts.toml files pointing containerd at meshd. A file
// that is not ours is backed up first (never overwritten: an existing different backup stops the run before
// anything is written), and its settings are kept after meshd. Failures are MirrorConfigErrors (errors.ts).
import { constants } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse, type TomlTable } from 'smol-toml';
import { writeAtomically } from '../../util/atomic-file.js';
import { attempt, certificatesIn, readIfExists, registryDirs } from './certs-dir.js';
import { checkContainerdConfig, DEFAULT_CONTAINERD_CONFIG, type ContainerdCheck } from './containerd-config.js';
import { setConfigPath, type ContainerdEdit } from './containerd-edit.js';
import { dockerdAdvice, type DockerdAdvice } from './dockerd.js';
import { MirrorConflictError, MirrorUsageError } from './errors.js';
import type { Restarter, RestartResult } from './restart.js';
import {
  BACKUP_SUFFIX, DEFAULT_CERTS_DIR, DEFAULT_MIRROR_URL, DEFAULT_REGISTRY, HOSTS_FILE, isOurs, normalizeMirrorUrl, registryOfDir,
  renderHostsToml, upstreamOf, validateRegistry,
} from './hosts-toml.js';

export interface ConfigureOptions {
  dir?: string;
  /** registries to configure; default `_default` (every registry without a directory of its own) */
  registries?: string[];
  /** `_default` and every registry that already has a directory in `dir` (such a directory hides `_default`) */
  all?: boolean;
  mirrorUrl?: string;
  containerdConfig?: string;
  /** leave containerd's config.toml alone (only report what it needs) */
  noContainerdConfig?: boolean;
  /** restarts containerd after its config.toml changed */
  restart?: Restarter;
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
  /** config.toml as found */
  containerd: ContainerdCheck;
  /** what configure changed in it */
  containerdEdit: ContainerdEdit;
  /** --restart: what happened */
  restart?: RestartResult;
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
  if (opts.all && opts.registries?.length) throw new MirrorUsageError('give either --registry or --all, not both');
  const existing = await registryDirs(dir);
  const notes: string[] = [];
  const registries = opts.all ? allRegistries(dir, existing, notes)
    : [...new Set((opts.registries?.length ? opts.registries : [DEFAULT_REGISTRY]).map(validateRegistry))];

  // Plan everything first: nothing is written when any registry cannot be done.
  const plans: Plan[] = [];
  const problems: string[] = [];
  // The directory containerd reads for each registry: `host_port_` before `host:port`, as containerd looks.
  const dirOf = new Map<string, string>();
  for (const name of existing) if (!dirOf.has(registryOfDir(name)) || name.endsWith('_')) dirOf.set(registryOfDir(name), name);
  for (const registry of registries) {
    const plan = await planFor(dir, registry, dirOf.get(registry) ?? registry, mirrorUrl, notes);
    if (typeof plan === 'string') {
      problems.push(plan);
      continue;
    }
    plans.push(plan);
  }
  if (problems.length > 0) throw new MirrorConflictError(problems);

  for (const p of plans) {
    if (p.action === 'unchanged') continue;
    const registryDir = dirname(p.path);
    await attempt('create', registryDir, () => mkdir(registryDir, { recursive: true, mode: 0o755 }));
    if (p.backupNeeded) {
      const backupPath = p.path + BACKUP_SUFFIX;
      // COPYFILE_EXCL: an existing backup is never overwritten.
      await attempt('back up to', backupPath, () => copyFile(p.path, backupPath, constants.COPYFILE_EXCL));
    }
    await attempt('write', p.path, () => writeAtomically(p.path, p.content, { throughLink: true }));
  }

  // A registry with a directory of its own does not use _default: say which ones escape the mirror.
  if (registries.includes(DEFAULT_REGISTRY)) {
    for (const name of existing) {
      if (registries.includes(registryOfDir(name))) continue;
      const hosts = await readIfExists(join(dir, name, HOSTS_FILE)).catch(() => undefined); // only for a note
      if (hosts && isOurs(hosts)) continue;
      notes.push(`${name} has its own directory in ${dir}, so containerd does not use ${DEFAULT_REGISTRY} for it: ` +
        `its pulls skip meshd (add --registry ${registryOfDir(name)}, or use --all)`);
    }
  }

  notes.push(...(await mirrorNotes(mirrorUrl)));

  const containerdConfig = opts.containerdConfig ?? DEFAULT_CONTAINERD_CONFIG;
  const containerd = await checkContainerdConfig(containerdConfig, dir);
  const containerdEdit = opts.noContainerdConfig ? { action: 'none' as const, reason: '--no-containerd-config' } : await setConfigPath(containerd, dir);
  const changed = containerdEdit.action !== 'none';
  const restart = !opts.restart ? undefined
    : changed ? await opts.restart(containerdConfig)
    : { restarted: false, detail: `${containerdConfig} did not change: containerd not restarted` };
  return {
    dir,
    mirrorUrl,
    files: plans.map(({ content: _c, backupNeeded: _b, ...f }) => f),
    notes,
    containerd,
    containerdEdit,
    ...(restart ? { restart } : {}),
    ctr: `ctr images pull --hosts-dir ${dir} docker.io/library/app:1`,
    dockerd: dockerdAdvice(mirrorUrl),
  };
}

/**
 * What keeps containerd from using meshd at `mirrorUrl` now, said at once rather than found out as pulls that skip it:
 * a meshd that does not answer (not started yet is fine: containerd asks it again at each pull), or one that refuses
 * this host's reads (hosts.toml carries no token: off loopback, meshd serves the addresses of --registry-allow).
 */
async function mirrorNotes(mirrorUrl: string): Promise<string[]> {
  try {
    const res = await fetch(`${mirrorUrl}/v2/`, { signal: AbortSignal.timeout(2_000) });
    await res.body?.cancel();
    if (res.status !== 401 && res.status !== 403) return [];
    return [`meshd at ${mirrorUrl} refuses this host's reads (HTTP ${res.status}): containerd sends it no token, so add this host's address to that meshd's --registry-allow, or use the meshd on this host`];
  } catch (err) {
    const why = ((err as Error).cause as Error | undefined)?.message ?? (err as Error).message;
    return [`meshd does not answer at ${mirrorUrl} now (${why}): containerd skips it until it does`];
  }
}

/** --all: `_default` and every directory of dir named like a registry (the others are noted and skipped). */
function allRegistries(dir: string, existing: string[], notes: string[]): string[] {
  const registries = [DEFAULT_REGISTRY];
  for (const name of existing) {
    if (name === DEFAULT_REGISTRY) continue;
    try {
      const registry = validateRegistry(registryOfDir(name));
      if (!registries.includes(registry)) registries.push(registry); // host_port_ and host:port are one
    } catch {
      notes.push(`skipped ${join(dir, name)}: not a registry host name`);
    }
  }
  return registries;
}

/** What configure would do for one registry, or why it must not touch it. */
async function planFor(dir: string, registry: string, dirName: string, mirrorUrl: string, notes: string[]): Promise<Plan | string> {
  const path = join(dir, dirName, HOSTS_FILE);
  const backupPath = path + BACKUP_SUFFIX;
  const current = await readIfExists(path);
  const backup = await readIfExists(backupPath);
  const currentOurs = current !== undefined && isOurs(current);
  if (current && !currentOurs && backup && !current.equals(backup)) {
    return `${path} is not ours and ${backupPath} already exists: move one of them away first`;
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
  // No hosts.toml of its own, ever: the directory's certificates, which containerd stops loading once there is one.
  const certs = previous === undefined && registry !== DEFAULT_REGISTRY ? await certificatesIn(join(dir, dirName)) : undefined;
  for (const cert of certs?.unpaired ?? []) notes.push(`${join(dir, dirName, cert)} has no key of its name: left out of ${path}`);
  const content = renderHostsToml(registry, mirrorUrl, previousTable, certs);
  const action = current === undefined ? 'created' : !currentOurs ? 'replaced' : current.equals(Buffer.from(content)) ? 'unchanged' : 'updated';
  const keepsBackup = (current !== undefined && !currentOurs) || (currentOurs && backup !== undefined);
  const fallback = previousTable ? `the hosts and server of the previous ${HOSTS_FILE}` : upstreamOf(registry) ?? 'the registry itself';
  return { registry, path, action, fallback, content, backupNeeded: current !== undefined && !currentOurs && backup === undefined,
    ...(keepsBackup ? { backup: backupPath } : {}) };
}
