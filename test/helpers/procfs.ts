// What Linux's /proc tells about a process, by pid: whether it runs, its start time, CPU time, its main thread's
// wakes, resident memory and command line, and which processes there are. Everything answers "gone" (undefined, 0, []) for a process
// that has exited, never an error: callers ask about processes that may exit at any moment.
import { readdir, readFile } from 'node:fs/promises';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface ProcessStat {
  /** R, S, D, Z (dead, waiting to be reaped), … */
  state: string;
  /** CPU time in user and kernel mode, in seconds. */
  userSeconds: number;
  systemSeconds: number;
  /** When the process started, in clock ticks since boot: with the pid, it names one process. */
  startTime: string;
}

/** Fields of /proc/<pid>/stat, undefined when there is no such process. */
export async function processStat(pid: number): Promise<ProcessStat | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
  if (stat === undefined) return undefined;
  // The command name (field 2) may hold spaces and parentheses: count fields after its closing parenthesis,
  // from state (field 3): utime is field 14, stime 15, starttime 22.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    state: fields[0],
    userSeconds: Number(fields[11] ?? 0) / TICKS_PER_SECOND,
    systemSeconds: Number(fields[12] ?? 0) / TICKS_PER_SECOND,
    startTime: fields[19],
  };
}

/** The kernel's start time of pid, undefined when it does not run (a zombie does not). */
export async function processStartTime(pid: number): Promise<string | undefined> {
  const stat = await processStat(pid);
  return stat === undefined || stat.state === 'Z' || stat.state === 'X' ? undefined : stat.startTime;
}

export async function isAlive(pid: number): Promise<boolean> {
  return (await processStartTime(pid)) !== undefined;
}

/** User + system CPU seconds used so far by these processes (0 for any that is gone). */
export async function cpuSeconds(pids: number[]): Promise<number> {
  let seconds = 0;
  for (const pid of pids) {
    const stat = await processStat(pid);
    seconds += (stat?.userSeconds ?? 0) + (stat?.systemSeconds ?? 0);
  }
  return seconds;
}

/**
 * How often the process's main thread has gone to sleep and been woken since it started (its voluntary context
 * switches): an idle event loop's wakes, 0 when it is gone.
 */
export function mainThreadWakes(pid: number): Promise<number> {
  return statusNumber(`/proc/${pid}/task/${pid}/status`, 'voluntary_ctxt_switches');
}

/** Resident memory in KiB (VmRSS), 0 when the process is gone. */
export function rssKb(pid: number): Promise<number> {
  return statusNumber(`/proc/${pid}/status`, 'VmRSS');
}

/** A numeric field of a status file (its first number), 0 when the file or the field is not there. */
async function statusNumber(path: string, field: string): Promise<number> {
  const status = await readFile(path, 'utf8').catch(() => '');
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status);
  return m ? Number(m[1]) : 0;
}

/** The process's arguments, the command first; [] when it is gone. */
export async function cmdline(pid: number): Promise<string[]> {
  const raw = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return raw.split('\0').filter(Boolean);
}

/** Pids of the processes (other than this one) whose arguments match. */
export async function pidsWhere(match: (argv: string[], pid: number) => boolean | Promise<boolean>): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid !== process.pid && (await match(await cmdline(pid), pid))) pids.push(pid);
  }
  return pids;
}

/** Mount points of this process's mount namespace (/proc/self/mountinfo, field 5, octal escapes of spaces undone). */
export async function mountPoints(): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').map((line) => line.split(' ')[4]?.replace(/\\040/g, ' ')).filter((p): p is string => !!p);
}
