// The marker file of a run (`<STATE_ROOT>/<run>/fleet.json`). It is written before anything else is created,
// so a crashed run is always findable, and it names the process that owns the run, so the cleanup at the next
// `up` never touches a fleet whose owner is still alive (two test files may bring up fleets at the same time).
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isRunId, MARKER, runNames, STATE_ROOT } from './layout.js';
import { processStartTime } from '../helpers/procfs.js';

export interface HostState {
  index: number;
  name: string;
  ns: string;
  veth: string;
  address: string;
  dir: string;
  containerdSocket: string;
  containerdPid?: number;
  meshdPid?: number;
  peerId?: string;
  /** Dialable multiaddr with /p2p/<id>. */
  p2p?: string;
}

export interface FleetState {
  run: string;
  /** Third octet of the fleet's 10.231.<subnet>.0/24. */
  subnet: number;
  createdAt: string;
  /** The process that brought the fleet up; the run is a leftover once it is gone (unless detached). */
  owner: { pid: number; startTime: string | undefined };
  /** Left running on purpose by `fleet up` (CLI): only `fleet down` removes it. */
  detached: boolean;
  swarmKeyFile: string;
  hosts: HostState[];
}

export async function writeState(state: FleetState): Promise<void> {
  const { dir, marker } = runNames(state.run);
  await mkdir(dir, { recursive: true });
  // Write then rename: a reader (another `up` cleaning leftovers) never sees half a file.
  const tmp = `${marker}.${process.pid}-${randomBytes(4).toString('hex')}.tmp`;
  await writeFile(tmp, `${JSON.stringify(state, null, 2)}\n`);
  await rename(tmp, marker);
}

export async function readState(run: string): Promise<FleetState | undefined> {
  try {
    return JSON.parse(await readFile(runNames(run).marker, 'utf8')) as FleetState;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read the fleet marker ${runNames(run).marker}`, { cause: err });
  }
}

/** Runs that have a marker file, oldest first. */
export async function listRuns(): Promise<FleetState[]> {
  let entries: string[];
  try {
    entries = await readdir(STATE_ROOT);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const states: FleetState[] = [];
  for (const run of entries.filter(isRunId)) {
    try {
      const state = await readState(run);
      if (state) states.push(state);
    } catch {
      // A marker that cannot be read is still ours: listed with no live owner, so that cleanup removes the run.
      states.push({ run, subnet: -1, createdAt: '', owner: { pid: 0, startTime: undefined }, detached: false, swarmKeyFile: '', hosts: [] });
    }
  }
  return states.sort((a, b) => a.createdAt.localeCompare(b.createdAt));
}

export async function currentOwner(): Promise<FleetState['owner']> {
  return { pid: process.pid, startTime: await processStartTime(process.pid) };
}

/** Whether the run's owner process still runs (same pid and same start time: pids get reused). */
export async function ownerAlive(state: FleetState): Promise<boolean> {
  const start = await processStartTime(state.owner.pid);
  return start !== undefined && start === state.owner.startTime;
}

export function stateFile(run: string): string {
  return join(STATE_ROOT, run, MARKER);
}

const claimFile = (subnet: number) => join(STATE_ROOT, 'subnets', String(subnet));

/**
 * Claims 10.231.<subnet>.0/24 for run (an exclusive create of `<STATE_ROOT>/subnets/<subnet>`). A claim held
 * by a run that has no marker any more is stale and taken over. False when a live run holds it.
 */
export async function claimSubnet(run: string, subnet: number): Promise<boolean> {
  await mkdir(join(STATE_ROOT, 'subnets'), { recursive: true });
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      await writeFile(claimFile(subnet), run, { flag: 'wx' });
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = (await readFile(claimFile(subnet), 'utf8').catch(() => '')).trim();
    if (holder === run) return true;
    if (isRunId(holder) && (await readState(holder))) return false;
    await unlink(claimFile(subnet)).catch(() => {});
  }
  return false;
}

/** Drops run's claim on its subnet, if it holds it. */
export async function releaseSubnet(run: string, subnet: number): Promise<void> {
  const holder = (await readFile(claimFile(subnet), 'utf8').catch(() => '')).trim();
  if (holder === run) await unlink(claimFile(subnet)).catch(() => {});
}

/** Removes subnet claims whose run has no marker any more (its owner crashed between claim and cleanup). */
export async function releaseStaleClaims(): Promise<void> {
  const claims = await readdir(join(STATE_ROOT, 'subnets')).catch(() => [] as string[]);
  for (const subnet of claims) {
    const holder = (await readFile(join(STATE_ROOT, 'subnets', subnet), 'utf8').catch(() => '')).trim();
    if (!isRunId(holder) || !(await stat(runNames(holder).marker).catch(() => undefined))) {
      await unlink(join(STATE_ROOT, 'subnets', subnet)).catch(() => {});
    }
  }
}
