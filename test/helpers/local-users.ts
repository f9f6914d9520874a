// Throw-away local users and a group for tests of who may write: made with the system's own tools,
// named after the test run so that nothing of the host's is touched, and removed afterwards.
import { randomBytes } from 'node:crypto';
import { run } from './run.js';

export interface LocalUsers {
  group: string;
  /** A user in `group`. */
  member: string;
  /** A user outside it. */
  outsider: string;
  remove(): Promise<void>;
}

export async function makeLocalUsers(): Promise<LocalUsers> {
  const id = randomBytes(3).toString('hex');
  const group = `lmw${id}`;
  const member = `lmm${id}`;
  const outsider = `lmo${id}`;
  const made: string[] = [];
  const remove = async () => {
    for (const user of made.filter((u) => u !== group)) await run('userdel', [user]).catch(() => undefined);
    if (made.includes(group)) await run('groupdel', [group]);
  };
  try {
    await run('groupadd', [group]);
    made.push(group);
    // No home; a shell and a password field of `*` (no password, but not a locked account), so that sshd
    // lets them log in with a key.
    for (const [user, extra] of [[member, ['-G', group]], [outsider, []]] as const) {
      await run('useradd', ['-M', '-N', '-s', '/bin/sh', '-p', '*', ...extra, user]);
      made.push(user);
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { group, member, outsider, remove };
}

/** curl as `user` (runuser), printing the status code then the body. */
export async function curlAs(user: string, args: string[]): Promise<{ status: number; body: string }> {
  const out = await run('runuser', ['-u', user, '--', 'curl', '-sS', '-w', '\n%{http_code}', ...args]);
  const cut = out.lastIndexOf('\n');
  return { status: Number(out.slice(cut + 1)), body: out.slice(0, cut) };
}
