// Processes of a fleet, handled by pid: `fleet down` may run in another process than `fleet up` (the CLI),
// so nothing here relies on ChildProcess handles. Daemons are started detached with their output in a log
// file, so they outlive the CLI that started them and Ctrl-C in a terminal reaches only the CLI.
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
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

/** The kernel's start time of pid (field 22 of /proc/<pid>/stat), undefined when it does not run. */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // dead, waiting to be reaped
  return fields[19];
}

export async function isAlive(pid: number): Promise<boolean> {
  return (await processStartTime(pid)) !== undefined;
}

export async function cmdline(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return raw.split('\0').filter(Boolean);
}

/** Live processes whose command line mentions a path below dir: the daemons (and shims) of one run. */
export async function pidsMentioning(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid) continue;
    if ((await cmdline(pid)).some((arg) => arg.includes(`${dir}/`) || arg === dir) && (await isAlive(pid))) pids.push(pid);
  }
  return pids;
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

/** Resident memory in KiB (VmRSS), 0 when the process is gone. */
export async function rssKb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) : 0;
}

/** The last lines of a log file, for error messages. */
export async function tail(file: string, lines = 20): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}
