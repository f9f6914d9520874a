// Processes of a fleet, handled by pid: `fleet down` may run in another process than `fleet up` (the CLI),
// so nothing here relies on ChildProcess handles. Daemons are started detached with their output in a log
// file, so they outlive the CLI that started them and Ctrl-C in a terminal reaches only the CLI.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isAlive, pidsWhere } from '../helpers/procfs.js';
import { exec } from './exec.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts `cmd args` inside network namespace ns (`ip netns exec` execs the command, so the pid is the
 * command's own), with stdout and stderr appended to logFile.
 */
export function spawnInNetns(ns: string, cmd: string, args: string[], logFile: string, env?: NodeJS.ProcessEnv): number {
  const log = openSync(logFile, 'a');
  try {
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], {
      detached: true,
      stdio: ['ignore', log, log],
      env: env ?? process.env,
    });
    child.once('error', () => {}); // a failed start shows as an exited pid and in the log
    child.unref();
    if (child.pid === undefined) throw new Error(`cannot start ${cmd} in ${ns} (see ${logFile})`);
    return child.pid;
  } finally {
    closeSync(log);
  }
}

/** Live processes whose command line mentions a path below dir: the daemons (and shims) of one run. */
export function pidsMentioning(dir: string): Promise<number[]> {
  return pidsWhere(async (argv, pid) => argv.some((arg) => arg.includes(`${dir}/`) || arg === dir) && (await isAlive(pid)));
}

/** Processes inside network namespace ns (every process of a fleet host runs in one). */
export async function netnsPids(ns: string): Promise<number[]> {
  const out = await exec('ip', ['netns', 'pids', ns]).catch(() => '');
  return out.split('\n').filter(Boolean).map(Number);
}

export async function waitGone(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (await isAlive(pid)) {
    if (Date.now() > deadline) return false;
    await sleep(25);
  }
  return true;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // ESRCH: already gone
  }
}

export function sendSignal(pid: number, sig: NodeJS.Signals): void {
  signal(pid, sig);
}

/**
 * Sends sig (SIGCONT too, so a paused process can act on it), waits up to graceMs, then SIGKILLs.
 * Resolves once the process is gone; throws if even SIGKILL did not end it.
 */
export async function stopPid(pid: number, what: string, { sig = 'SIGTERM', graceMs = 5_000 }: { sig?: NodeJS.Signals; graceMs?: number } = {}): Promise<void> {
  if (!(await isAlive(pid))) return;
  signal(pid, sig);
  if (sig !== 'SIGKILL') signal(pid, 'SIGCONT');
  if (await waitGone(pid, graceMs)) return;
  signal(pid, 'SIGKILL');
  if (!(await waitGone(pid, 5_000))) throw new Error(`${what} (pid ${pid}) did not exit after SIGKILL`);
}

/** The last lines of a log file, for error messages. */
export async function tail(file: string, lines = 20): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
