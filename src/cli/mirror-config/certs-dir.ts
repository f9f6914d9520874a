// File access in a certs.d directory. Failures are MirrorFsErrors naming the path; the helpers that only feed
// notes (listing certificates, removing a directory left empty) are best effort and say so in their result.
import { readdir, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { MirrorFsError } from './errors.js';
import { writeAtomically } from '../../util/atomic-file.js';

/** Runs fn, turning its failure into a MirrorFsError: "cannot <action> <path>: <why>". */
export async function attempt<T>(action: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new MirrorFsError(action, path, err);
  }
}

/** The file's bytes, or undefined when it does not exist. */
export async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MirrorFsError('read', path, err);
  }
}

/**
 * Puts a backup's bytes back at `path` and removes the backup: written where a link at `path` points, keeping the
 * file's owner and mode (a backup's copy is root's), on whatever filesystem the link leads to.
 */
export async function putBack(path: string, backup: string, bytes: Buffer): Promise<void> {
  // A file gone meanwhile comes back with the backup's mode (copied from it): a private config stays private.
  const { mode } = await attempt('read', backup, () => stat(backup));
  await attempt('restore', path, () => writeAtomically(path, bytes, { throughLink: true, mode: mode & 0o7777 }));
  await attempt('remove', backup, () => unlink(backup));
}

/** Subdirectories of the certs.d directory (registries with a directory of their own); [] when it does not exist. */
export async function registryDirs(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new MirrorFsError('read', dir, err);
  }
  const dirs: string[] = [];
  for (const name of names.sort()) {
    const s = await stat(join(dir, name)).catch(() => undefined); // gone meanwhile, or not ours to look at
    if (s?.isDirectory()) dirs.push(name);
  }
  return dirs;
}

/**
 * The certificates containerd loads from a registry's directory while it has no hosts.toml (as it does: each `.crt` a
 * CA, each `.cert` a client certificate with the `.key` of its name), by absolute path; `unpaired`: `.cert`s without one.
 */
export async function certificatesIn(registryDir: string): Promise<{ ca: string[]; client: [string, string][]; unpaired: string[] }> {
  const files = (await readdir(registryDir).catch(() => [] as string[])).sort();
  const certs = files.filter((f) => f.endsWith('.cert'));
  const keyOf = (cert: string) => `${cert.slice(0, -'.cert'.length)}.key`;
  return {
    ca: files.filter((f) => f.endsWith('.crt')).map((f) => join(registryDir, f)),
    client: certs.filter((c) => files.includes(keyOf(c))).map((c) => [join(registryDir, c), join(registryDir, keyOf(c))]),
    unpaired: certs.filter((c) => !files.includes(keyOf(c))),
  };
}

/** Removes the directory when it is empty; whether it did. */
export async function removeIfEmpty(dir: string): Promise<boolean> {
  if ((await readdir(dir).catch(() => ['?'])).length > 0) return false;
  return rmdir(dir).then(() => true, () => false);
}
