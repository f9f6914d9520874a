// Removing a run, from its run id alone: used by fleet.down(), by `fleet down` in another process, and by the
// next `up` for runs whose owner crashed. Only things named after the run (lm-<run>-…) or living in its
// directory are touched, and the result is checked: what remains is reported, never silently left.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { unmountUnder } from '../helpers/containerd.js';
import { cmdline, mountPoints } from '../helpers/procfs.js';
import { runNames } from './layout.js';
import { removeRunNetwork, runLinks, runNamespaces } from './network.js';
import { netnsPids, pidsMentioning, stopPid } from './processes.js';
import { listRuns, ownerAlive, readState, releaseStaleClaims, releaseSubnet } from './state.js';

/** Processes of the run: everything inside its namespaces, and whatever names a file in its directory. */
export async function runPids(run: string): Promise<number[]> {
  const pids = new Set(await pidsMentioning(runNames(run).dir));
  for (const ns of await runNamespaces(run)) for (const pid of await netnsPids(ns)) pids.add(pid);
  pids.delete(process.pid);
  return [...pids];
}

async function runMounts(run: string): Promise<string[]> {
  const { dir } = runNames(run);
  return (await mountPoints()).filter((p) => p === dir || p.startsWith(`${dir}/`));
}

/** What of the run still exists, one readable line per thing; empty when the run is gone entirely. */
export async function leftovers(run: string): Promise<string[]> {
  const found: string[] = [];
  for (const ns of await runNamespaces(run)) found.push(`namespace ${ns}`);
  for (const link of await runLinks(run)) found.push(`link ${link}`);
  for (const pid of await runPids(run)) found.push(`process ${pid}: ${(await cmdline(pid)).join(' ')}`);
  for (const mount of await runMounts(run)) found.push(`mount ${mount}`);
  if (existsSync(runNames(run).dir)) found.push(`directory ${runNames(run).dir}`);
  return found;
}

/**
 * Ends the run's processes (SIGTERM, SIGKILL after graceMs), unmounts what is mounted in its directory,
 * deletes its links and namespaces, then its directory. Throws, listing them, if any of those remain.
 */
export async function removeRun(run: string, { graceMs = 5_000 }: { graceMs?: number } = {}): Promise<void> {
  // Again while any appear: containerd may start a shim while we stop it.
  for (let round = 0; round < 3; round++) {
    const pids = await runPids(run);
    if (pids.length === 0) break;
    const results = await Promise.allSettled(pids.map((pid) => stopPid(pid, `fleet ${run} process`, { graceMs })));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed.length) throw new Error(`fleet ${run}: ${failed.map((f) => (f.reason as Error).message).join('; ')}`);
  }
  const { dir } = runNames(run);
  const state = await readState(run).catch(() => undefined);
  await unmountUnder(dir);
  await removeRunNetwork(run);
  if (state) await releaseSubnet(run, state.subnet);
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
  const left = await leftovers(run);
  if (left.length) throw new Error(`fleet ${run} could not be removed entirely; left:\n  ${left.join('\n  ')}`);
}

/**
 * Removes runs whose owner process is gone (a crashed test, a killed `fleet up`). Runs left on purpose by the
 * CLI (detached) and runs whose owner still runs (another test file's fleet) are kept. Returns removed run ids.
 */
export async function removeLeftoverRuns(): Promise<string[]> {
  const removed: string[] = [];
  for (const state of await listRuns()) {
    if (state.detached || (await ownerAlive(state))) continue;
    await removeRun(state.run, { graceMs: 0 });
    removed.push(state.run);
  }
  await releaseStaleClaims();
  return removed;
}
