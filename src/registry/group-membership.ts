// Whether a user belongs to a group, from /etc/passwd (primary group) and /etc/group (members), read on
// each call: they are small, and a `usermod -aG` takes effect without restarting meshd.
import { readFile } from 'node:fs/promises';

/** Records of a colon-separated database (passwd, group) as arrays of fields. */
async function records(file: string): Promise<string[][]> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw new Error(`reading ${file}: ${err.message}`, { cause: err });
  });
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
}

export async function userInGroup(uid: number, group: string): Promise<boolean> {
  const groupRecord = (await records('/etc/group')).find((g) => g[0] === group);
  if (!groupRecord) return false;
  const user = (await records('/etc/passwd')).find((u) => Number(u[2]) === uid);
  if (!user) return false;
  const [name, , , primaryGid] = user;
  return primaryGid === groupRecord[2] || (groupRecord[3] ?? '').split(',').includes(name);
}
