// Replacing a file so that readers, and the file after a crash, see the old or the new content whole, never a
// torn or empty one.
import { randomUUID } from 'node:crypto';
import { chmod, chown, link, open, readdir, readFile, realpath, rename, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';

export interface AtomicWrite {
  /** Mode of a new file (default 0644); a file replaced keeps its own (a private config stays private). */
  mode?: number;
  /** Never replace: fail with EEXIST when the file exists, also when another process created it meanwhile. */
  exclusive?: boolean;
  /** Replace the file a symbolic link at the path points to (an operator's config file), not the link. */
  throughLink?: boolean;
}

/**
 * Where replacing `path` must happen: the file a symbolic link points to (a config file linked from where config
 * management keeps it stays linked), else `path` itself.
 */
async function replaceablePath(path: string): Promise<string> {
  return realpath(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return path;
    throw err;
  });
}

/** A file replaced keeps its mode, and its owner and group when root replaces it. */
export async function writeAtomically(target: string, data: string | Uint8Array, { mode, exclusive = false, throughLink = false }: AtomicWrite = {}): Promise<void> {
  const path = throughLink ? await replaceablePath(target) : target;
  const tmp = `${path}.${randomUUID()}.tmp`;
  const existing = exclusive ? undefined : await stat(path).catch(() => undefined);
  const fileMode = existing ? existing.mode & 0o7777 : (mode ?? 0o644);
  try {
    const handle = await open(tmp, 'wx', fileMode);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(tmp, fileMode); // the umask may have narrowed it
    if (existing && process.getuid?.() === 0) await chown(tmp, existing.uid, existing.gid);
    await (exclusive ? link(tmp, path) : rename(tmp, path));
    await fsyncDir(dirname(path));
  } finally {
    await rm(tmp, { force: true });
  }
}

const TEMPORARY = /\.[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.tmp$/;

/** Removes what writes of files in `dir` left when the process died before their rename; how many there were. */
export async function removeLeftovers(dir: string): Promise<number> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return [] as string[];
    throw err;
  });
  const left = names.filter((f) => TEMPORARY.test(f));
  await Promise.all(left.map((f) => rm(join(dir, f), { force: true })));
  return left.length;
}

/** Makes the entries of `dir` (a file renamed or linked into it) survive a crash. */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The JSON a state file holds (one meshd writes with writeAtomically): undefined when it is absent, or unreadable,
 * which is told: `what` then starts afresh.
 */
export async function readSaved(file: string, log: Logger, what: string): Promise<unknown> {
  try {
    return JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log.warn({ file, err: (err as Error).message }, `${what}: unreadable, starting afresh`);
    return undefined;
  }
}
