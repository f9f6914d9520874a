// Files that hold a secret (the swarm key, the registry token, upstream credentials): refused when a user other than
// meshd's own or root owns them, or when every local user (or every member of their group) can read or change them:
// the secret would no longer be one, and meshd would be trusting whoever can rewrite it.
import { readFile, stat } from 'node:fs/promises';

export async function readSecretFile(path: string, what: string): Promise<Buffer> {
  const cannotRead = (err: unknown) => new Error(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  let owner: number;
  let mode: number;
  try {
    ({ uid: owner, mode } = await stat(path));
  } catch (err) {
    throw cannotRead(err);
  }
  const me = process.geteuid!();
  if (owner !== me && owner !== 0) {
    // Under the unit meshd is root without CAP_DAC_OVERRIDE: another user's 0600 file would be a bare EACCES.
    throw new Error(`${what} ${path} belongs to uid ${owner}, who could change it: meshd (uid ${me}) trusts only its own `
      + `or root's${me === 0 ? ', and under systemd cannot read another user\'s' : ''}: \`chown ${me === 0 ? 'root' : me} ${path}\``);
  }
  const octal = (mode & 0o777).toString(8).padStart(3, '0');
  if (mode & 0o006) {
    throw new Error(`${what} ${path} can be read or changed by every user of this host (mode ${octal}): ` +
      `make it private with \`chmod 600 ${path}\` (or 640 with a group that needs it)`);
  }
  if (mode & 0o020) {
    throw new Error(`${what} ${path} can be changed by every member of its group (mode ${octal}): \`chmod g-w ${path}\``);
  }
  try {
    return await readFile(path);
  } catch (err) {
    throw cannotRead(err);
  }
}
