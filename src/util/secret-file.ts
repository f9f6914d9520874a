// Files that hold a secret (the swarm key, the registry token): refused when every local user can read
// or change them, since then the secret is no longer one, and meshd would be trusting anyone on the host.
import { readFile, stat } from 'node:fs/promises';

export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  let mode: number;
  let content: Buffer;
  try {
    mode = (await stat(path)).mode;
    content = await readFile(path);
  } catch (err) {
    throw new Error(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (mode & 0o006) {
    const octal = (mode & 0o777).toString(8).padStart(3, '0');
    throw new Error(`${what} ${path} can be read or changed by every user of this host (mode ${octal}): ` +
      `make it private with \`chmod 600 ${path}\` (or 640 with a group that needs it)`);
  }
  return content;
}
