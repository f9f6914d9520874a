// Child processes: stop with SIGTERM then SIGKILL, find them by argument, sample their memory, free loopback ports.
import type { ChildProcess } from 'node:child_process';
import { pidsWhere, rssKb } from '../../test/helpers/procfs.js';

/** Resolves when the child has exited (immediately if it already has). */
export function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = exited(child);
  child.kill('SIGTERM');
  const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
  if ((await Promise.race([gone, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await gone;
  }
}

/** Pids whose command line has `needle` as one argument (e.g. a config path only one process was given). */
export function pidsWithArg(needle: string): Promise<number[]> {
  return pidsWhere((argv) => argv.includes(needle));
}

/** Reads pid's resident memory (VmRSS) every `intervalMs` until stopped; `stop` gives the peak in KiB. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): Promise<number> } {
  let peak = 0;
  let stopped = false;
  const sampling = (async () => {
    while (!stopped) {
      peak = Math.max(peak, await rssKb(pid));
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await sampling;
      return Math.max(peak, await rssKb(pid));
    },
  };
}

export { freePort } from '../../test/helpers/ports.js';
