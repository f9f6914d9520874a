// A daemon a test starts (dockerd, sshd) in its own process group, so that stopping it also ends what it forked.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';

export interface GroupProcess {
  proc: ChildProcess;
  alive(): boolean;
  exited: Promise<void>;
  /** SIGTERM to the group, SIGKILL if it is still there after `killAfterMs`; resolves once it exited. */
  stop(killAfterMs?: number): Promise<void>;
}

/** Starts `cmd` with its output appended to `log`. A failed start shows as an exited process and in the log. */
export function spawnGroup(cmd: string, args: string[], log: string): GroupProcess {
  const out = openSync(log, 'a');
  const proc = spawn(cmd, args, { stdio: ['ignore', out, out], detached: true });
  closeSync(out);
  proc.once('error', () => {});
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const alive = () => proc.exitCode === null && proc.signalCode === null;
  const stop = async (killAfterMs = 15_000) => {
    if (!alive()) return;
    process.kill(-proc.pid!, 'SIGTERM');
    const timer = setTimeout(() => alive() && process.kill(-proc.pid!, 'SIGKILL'), killAfterMs);
    await exited;
    clearTimeout(timer);
  };
  return { proc, alive, exited, stop };
}
