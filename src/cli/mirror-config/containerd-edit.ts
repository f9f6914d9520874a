// Sets config_path in containerd's config.toml when it has none, so that CRI (kubelet, crictl) pulls read the
// hosts.toml files: the file is edited as text (comments and layout kept), backed up first, and the result is
// checked by parsing it again. `restore` puts the backup back. ctr does not read config_path: it takes --hosts-dir.
import { constants } from 'node:fs';
import { copyFile, readFile, unlink } from 'node:fs/promises';
import { attempt, putBack, readIfExists } from './certs-dir.js';
import { inspectContainerdConfig, type ContainerdCheck } from './containerd-config.js';
import { BACKUP_SUFFIX } from './hosts-toml.js';
import { writeAtomically } from '../../util/atomic-file.js';

/** Marks our edit, so that restore only puts the backup back over a file that still holds it. */
const EDIT_MARKER = '# LayerMesh: config_path added by `meshctl mirror configure`; `meshctl mirror restore` puts back the original.';
/** Heads a config.toml we created because there was none: restore removes it. */
const CREATED_MARKER = '# LayerMesh: written by `meshctl mirror configure` (there was no config.toml); `meshctl mirror restore` removes it.';

export interface ContainerdEdit {
  /** set: config_path added (backup made); created: the file did not exist; none: nothing written (see reason) */
  action: 'set' | 'created' | 'none';
  backup?: string;
  reason?: string;
}

/** A table header as TOML reads it: spacing aside, and 'literal' keys (containerd 2's default config) as "basic" ones. */
const normalize = (header: string) => header.replace(/\s+/g, '').replace(/'/g, '"');
/** An empty config_path (containerd 1.6 and 1.7's `config default`): containerd reads it as unset. */
const EMPTY_CONFIG_PATH = /^\s*config_path\s*=\s*(?:""|'')\s*(?:#.*)?$/;

/**
 * The text with config_path under the check's registry table: in place of an empty one, else after its header, or
 * in a new table at the end.
 */
function withConfigPath(text: string, check: ContainerdCheck, dir: string): string {
  const line = `config_path = ${JSON.stringify(dir)}`;
  const lines = text.split('\n');
  const header = lines.findIndex((l) => normalize(l.replace(/#.*$/, '')) === normalize(`[${check.table}]`));
  if (header >= 0) {
    const end = lines.findIndex((l, i) => i > header && l.trim().startsWith('['));
    const empty = lines.slice(header + 1, end < 0 ? undefined : end).findIndex((l) => EMPTY_CONFIG_PATH.test(l));
    const at = empty >= 0 ? header + 1 + empty : header + 1;
    const indent = empty >= 0 ? (/^\s*/.exec(lines[at])?.[0] ?? '') : (/^\s*/.exec(lines[header])?.[0] ?? '') + '  ';
    lines.splice(at, empty >= 0 ? 1 : 0, `${indent}${EDIT_MARKER}`, `${indent}${line}`);
    return lines.join('\n');
  }
  return `${text.replace(/\n*$/, '\n')}\n${EDIT_MARKER}\n[${check.table}]\n  ${line}\n`;
}

/** The directory a config_path of ours names: the line after the marker, or the created file's. */
function ourDir(text: string, marker: string): string | undefined {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.trim() === marker);
  const value = at < 0 ? undefined : lines.slice(at + 1).map((l) => /^\s*config_path = (".*")\s*$/.exec(l)?.[1]).find(Boolean);
  try {
    return value === undefined ? undefined : (JSON.parse(value) as string);
  } catch {
    return undefined;
  }
}

/** The config.toml configure writes where there was none. */
const created = (check: ContainerdCheck) => `${CREATED_MARKER}\n${check.snippet}\n`;

/** Adds config_path when the check says it is unset (or the file is missing); anything else is left to the user. */
export async function setConfigPath(check: ContainerdCheck, dir: string): Promise<ContainerdEdit> {
  const path = check.config;
  if (check.criDisabled) return { action: 'none', reason: 'the CRI plugin is disabled: config_path would have no effect' };
  if (check.conflicts.length > 0) return { action: 'none', reason: `containerd refuses config_path next to ${check.conflicts.join(', ')}` };
  if (check.state === 'missing') {
    await attempt('write', path, () => writeAtomically(path, created(check), { throughLink: true }));
    return { action: 'created' };
  }
  if (check.state !== 'unset') {
    return { action: 'none', reason: check.state === 'set' ? 'already set' : `config_path is ${check.state} there: change it by hand` };
  }
  const text = await attempt('read', path, () => readFile(path, 'utf8'));
  const edited = withConfigPath(text, check, dir);
  // Written only if containerd would read it as meant: the same check, on the new text, says `set`.
  const after = inspectContainerdConfig(edited, dir, path);
  if (after.state !== 'set') return { action: 'none', reason: `could not add config_path to [${check.table}] safely: add it by hand` };
  const backup = path + BACKUP_SUFFIX;
  if (await readIfExists(backup)) return { action: 'none', reason: `${backup} already exists: move it away first` };
  await attempt('back up to', backup, () => copyFile(path, backup, constants.COPYFILE_EXCL));
  await attempt('write', path, () => writeAtomically(path, edited, { throughLink: true }));
  return { action: 'set', backup };
}

export interface ContainerdRestore {
  config: string;
  /** restored: the backup is back; removed: the file we created is gone; left: edited since, untouched */
  action: 'restored' | 'removed' | 'left';
  detail?: string;
}

/**
 * Undoes setConfigPath, but only where the file is as configure left it: an operator's edits since (a cgroup driver,
 * a registry's credentials) are never thrown away. Undefined when there was nothing of ours.
 */
export async function restoreContainerdConfig(path: string, certsDir: string): Promise<ContainerdRestore | undefined> {
  const current = (await readIfExists(path))?.toString('utf8');
  // What configure wrote for another directory (containerd's, when this restore is of Docker's) stays.
  const forOther = (marker: string) => current !== undefined && ourDir(current, marker) !== undefined && ourDir(current, marker) !== certsDir;
  if (forOther(EDIT_MARKER) || forOther(CREATED_MARKER)) return undefined;
  const backup = path + BACKUP_SUFFIX;
  const saved = await readIfExists(backup);
  const original = saved?.toString('utf8');
  if (saved !== undefined && original !== undefined) {
    if (current !== undefined && !current.includes(EDIT_MARKER)) {
      return { config: path, action: 'left', detail: `our config_path is gone from it; ${backup} left for you to compare` };
    }
    if (current !== undefined && withConfigPath(original, inspectContainerdConfig(original, certsDir, path), certsDir) !== current) {
      return { config: path, action: 'left', detail: `it was edited since: take out the two LayerMesh lines by hand (the original is ${backup})` };
    }
    await putBack(path, backup, saved);
    return { config: path, action: 'restored', detail: `from ${backup}` };
  }
  if (current?.startsWith(CREATED_MARKER)) {
    if (current !== created(inspectContainerdConfig(undefined, certsDir, path))) {
      return { config: path, action: 'left', detail: 'it was edited since it was created: remove it by hand if nothing in it is needed' };
    }
    await attempt('remove', path, () => unlink(path));
    return { config: path, action: 'removed' };
  }
  return undefined;
}
