import type { ChildProcess } from 'node:child_process';

/**
 * Sends `signal` to a child still running, then SIGKILL once `killAfterMs` passed without its exit (a daemon that
 * hangs as it stops must not hang the hook stopping it); true when it had to be killed.
 */
export async function stopChild(child: ChildProcess, exited: Promise<unknown>, signal: NodeJS.Signals, killAfterMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return false;
  child.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), killAfterMs)));
  try {
    if ((await Promise.race([exited, late])) !== 'late') return false;
    child.kill('SIGKILL');
    await exited;
    return true;
  } finally {
    clearTimeout(timer);
  }
}
