// Starting one host's containerd and meshd inside its namespace and waiting until each is usable.
// Both run detached with their logs in the host's directory (see processes.ts for why).
import { mkdir, open } from 'node:fs/promises';
import { join } from 'node:path';
import { ctr, writeContainerdConfig, type ContainerdPaths } from '../helpers/containerd.js';
import { meshdCommand, readyLine } from '../helpers/meshd.js';
import { isAlive } from '../helpers/procfs.js';
import { spawnInNetns, stopPid, tail } from './processes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface StartedContainerd extends ContainerdPaths {
  pid: number;
  log: string;
}

/** Writes the config (same as the test suite's private containerd) and starts containerd in ns. */
export async function startContainerdIn(ns: string, dir: string, { timeoutMs = 30_000 } = {}): Promise<StartedContainerd> {
  await mkdir(dir, { recursive: true });
  const paths = await writeContainerdConfig(dir);
  const log = join(dir, 'containerd.log');
  const pid = spawnInNetns(ns, 'containerd', ['--config', paths.config], log);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) throw new Error(`containerd in ${ns} exited before answering: ${await tail(log)}`);
    // The socket is a file: ctr can ask from the root namespace, which spares an `ip netns exec`.
    try {
      await ctr(paths.socket, ['version']);
      return { ...paths, pid, log };
    } catch (err) {
      if (Date.now() > deadline) {
        await stopPid(pid, `containerd in ${ns}`, { sig: 'SIGKILL' });
        throw new Error(`containerd in ${ns} did not answer on ${paths.socket} within ${timeoutMs} ms: ${await tail(log)}`, { cause: err });
      }
    }
    await sleep(100);
  }
}

export interface MeshdReady {
  pid: number;
  peerId: string;
  /** Listen multiaddrs with /p2p/<id>. */
  p2p: string[];
  registry: string;
}

/** Node options every fleet meshd runs with (FLEET_MESHD_NODE_FLAGS, space-separated): profiles of a fleet run. */
const MESHD_NODE_FLAGS = (process.env.FLEET_MESHD_NODE_FLAGS ?? '').split(' ').filter(Boolean);

/**
 * Starts `node <meshd> args` in ns and waits for its "meshd ready" log line. The log file is appended to on
 * every start of the host's meshd; only lines written after this start count.
 */
export async function startMeshdIn(ns: string, meshdMain: string, args: string[], log: string, { timeoutMs = 60_000, signal }: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<MeshdReady> {
  const offset = await fileSize(log);
  const [node, ...options] = meshdCommand(meshdMain, MESHD_NODE_FLAGS);
  const pid = spawnInNetns(ns, node, [...options, ...args], log);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = findReady(await readFrom(log, offset));
    if (ready) return { pid, ...ready };
    const failure = signal?.aborted ? 'was aborted (fleet going down)'
      : !(await isAlive(pid)) ? 'exited before it was ready'
      : Date.now() > deadline ? `was not ready within ${timeoutMs} ms` : undefined;
    if (failure) {
      await stopPid(pid, `meshd in ${ns}`, { sig: 'SIGKILL' });
      throw new Error(`meshd in ${ns} ${failure}; last log lines:\n${await tail(log, 10)}`);
    }
    await sleep(100);
  }
}

/** The "meshd ready" line among the lines written so far (one cut in the middle is read again on the next round). */
function findReady(text: string): Omit<MeshdReady, 'pid'> | undefined {
  for (const line of text.split('\n')) {
    const entry = readyLine(line);
    if (entry?.peerId && entry.p2p) return { peerId: entry.peerId, p2p: entry.p2p, registry: entry.registry };
  }
  return undefined;
}

async function fileSize(file: string): Promise<number> {
  const fh = await open(file, 'a+');
  try {
    return (await fh.stat()).size;
  } finally {
    await fh.close();
  }
}

async function readFrom(file: string, offset: number): Promise<string> {
  const fh = await open(file, 'r');
  try {
    const size = (await fh.stat()).size;
    if (size <= offset) return '';
    const buf = Buffer.alloc(size - offset);
    await fh.read(buf, 0, buf.length, offset);
    return buf.toString();
  } finally {
    await fh.close();
  }
}
