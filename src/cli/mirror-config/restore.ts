// `meshctl mirror restore`: undoes configure in a certs.d directory. Our hosts.toml files go (the backup of the
// file we replaced comes back in their place, byte for byte); files that are not ours are left alone.
// Failures are MirrorConfigErrors (errors.ts).
import { unlink } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { attempt, putBack, readIfExists, registryDirs, removeIfEmpty } from './certs-dir.js';
import { DEFAULT_CONTAINERD_CONFIG } from './containerd-config.js';
import { restoreContainerdConfig, type ContainerdRestore } from './containerd-edit.js';
import { BACKUP_SUFFIX, DEFAULT_CERTS_DIR, HOSTS_FILE, isOurs } from './hosts-toml.js';
import type { Restarter, RestartResult } from './restart.js';

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
  /** containerd's config.toml, when configure had changed it */
  containerd?: ContainerdRestore;
  restart?: RestartResult;
}

export interface RestoreOptions {
  dir?: string;
  containerdConfig?: string;
  /** restarts containerd after its config.toml changed back */
  restart?: Restarter;
}

export async function restoreMirror(opts: RestoreOptions = {}): Promise<RestoreReport> {
  const dir = resolve(opts.dir ?? DEFAULT_CERTS_DIR);
  const files: RestoredFile[] = [];
  for (const registry of await registryDirs(dir)) {
    const registryDir = join(dir, registry);
    const path = join(registryDir, HOSTS_FILE);
    const backupPath = path + BACKUP_SUFFIX;
    const current = await readIfExists(path);
    const backup = await readIfExists(backupPath);
    if (current === undefined && backup === undefined) continue;
    if (backup !== undefined && (current === undefined || isOurs(current))) {
      await putBack(path, backupPath, backup);
      files.push({ registry, path, action: 'restored', detail: `from ${backupPath}` });
    } else if (current !== undefined && isOurs(current)) {
      await attempt('remove', path, () => unlink(path));
      files.push({ registry, path, action: 'removed', dirRemoved: await removeIfEmpty(registryDir) });
    } else if (current !== undefined && backup !== undefined && current.equals(backup)) {
      await attempt('remove', backupPath, () => unlink(backupPath));
      files.push({ registry, path, action: 'backup-removed', detail: `${backupPath} was identical to ${HOSTS_FILE}` });
    } else {
      files.push({ registry, path, action: 'left', detail: backup !== undefined
        ? `not written by LayerMesh; ${backupPath} left too (move it back by hand if it is the one you want)`
        : 'not written by LayerMesh' });
    }
  }
  const config = opts.containerdConfig ?? DEFAULT_CONTAINERD_CONFIG;
  const containerd = await restoreContainerdConfig(config, dir);
  const changed = containerd !== undefined && containerd.action !== 'left';
  const restart = !opts.restart ? undefined
    : changed ? await opts.restart(config)
    : { restarted: false, detail: `${config} did not change: containerd not restarted` };
  return { dir, files, ...(containerd ? { containerd } : {}), ...(restart ? { restart } : {}) };
}
