// Starting a real meshd process and knowing when it is ready: its JSON "meshd ready" log line tells the URLs
// and the peer id. spawnMeshd is the one launcher of the tests, the demo and the benchmarks (bench/lib/servers.ts);
// readyLine reads that line wherever it was written (the fleet's log files). startMeshd is the tests' meshd:
// the built dist/, every listener on 127.0.0.1, a temporary data dir.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { builtEntryPoints } from '../fleet/layout.js';
import { run } from './run.js';
import { waitFor } from './wait.js';
import { stopChild } from './stop-child.js';

/** What meshd's "meshd ready" log line tells; the mesh fields only from builds that have a mesh. */
export interface MeshdReadyLine {
  /** The registry's URL (and the admin API's). */
  registry: string;
  /** The peer data plane's URL. */
  peer?: string;
  peerId?: string;
  /** Dialable libp2p multiaddrs, with /p2p/<id>. */
  p2p?: string[];
}

/** The "meshd ready" entry of a log line; undefined for any other line, or one cut short. */
export function readyLine(line: string): MeshdReadyLine | undefined {
  if (!line.includes('"meshd ready"')) return undefined;
  try {
    const entry = JSON.parse(line) as { msg?: unknown } & Partial<MeshdReadyLine>;
    return entry.msg === 'meshd ready' && typeof entry.registry === 'string' ? (entry as MeshdReadyLine) : undefined;
  } catch {
    return undefined;
  }
}

/** Flags that put each listener of meshd on 127.0.0.1 with a free port; `has` keeps those a build knows. */
export function loopbackListeners(has: (flag: string) => boolean = () => true): string[] {
  const flags: [string, string][] = [['--registry-addr', '127.0.0.1:0'], ['--p2p-listen', '/ip4/127.0.0.1/tcp/0'], ['--peer-addr', '127.0.0.1:0']];
  return flags.filter(([flag]) => has(flag)).flat();
}

export interface SpawnedMeshd {
  proc: ChildProcess;
  /** Its log lines so far, parsed ({ raw } for a line that is not JSON); the most recent `maxLogs`. */
  logs: Record<string, unknown>[];
  /** What its "meshd ready" line tells; rejects, with its stderr and last log lines, when it exits (or cannot start) first. */
  ready: Promise<MeshdReadyLine>;
  /** Its exit code (null after a signal), once it has exited. */
  exited: Promise<number | null>;
}

export interface SpawnOptions {
  /** The daemon's entry point: by default the build in dist/. */
  main?: string;
  /** How error messages name it. */
  name?: string;
  /** How many log entries to keep (the oldest go first); all by default. */
  maxLogs?: number;
  /** Its environment: this process's by default. */
  env?: NodeJS.ProcessEnv;
  /** What runs it, before `args` (e.g. a packaged wrapper inside a network namespace); by default node and `main`. */
  command?: string[];
}

/** How to run `main` with this node: the options its `#!` line names, then `extra` (later ones win), then `main`. */
export function meshdCommand(main: string, extra: string[] = []): string[] {
  return [process.execPath, ...nodeOptionsOf(main), ...extra, main];
}

/** The Node.js options meshd's entry point names on its `#!` line (`#!/usr/bin/env -S node OPTIONS`). */
export function nodeOptionsOf(main: string): string[] {
  const first = readFileSync(main, 'utf8').split('\n', 1)[0];
  return /^#!\/usr\/bin\/env -S node (.+)$/.exec(first)?.[1].split(' ') ?? [];
}

const RECENT_LINES = 20;
const STDERR_BYTES = 16 << 10;

/** Starts `node <main> args`; what it says it is ready comes as `ready`. Stopping it is the caller's. */
export function spawnMeshd(args: string[], { main = builtEntryPoints().meshd, name = 'meshd', maxLogs = Infinity, env, command }: SpawnOptions = {}): SpawnedMeshd {
  const [program, ...first] = command ?? meshdCommand(main);
  const proc = spawn(program, [...first, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const exited = new Promise<number | null>((resolve) => {
    proc.once('exit', (code) => resolve(code));
    proc.once('error', () => proc.pid === undefined && resolve(null)); // it never started
  });
  const logs: Record<string, unknown>[] = [];
  const recent: string[] = [];
  let stderr = ''; // its beginning: where a bad option is named
  proc.stderr!.on('data', (d: Buffer) => {
    if (stderr.length < STDERR_BYTES) stderr += d.toString().slice(0, STDERR_BYTES - stderr.length);
  });
  const ready = new Promise<MeshdReadyLine>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      recent.push(line);
      if (recent.length > RECENT_LINES) recent.shift();
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        logs.push({ raw: line });
      }
      if (logs.length > maxLogs) logs.shift();
      const entry = readyLine(line);
      if (entry) resolve(entry);
    });
    proc.once('error', reject);
    // 'close' comes after the last line of its output: the error message has all of it.
    proc.once('close', (code, signal) => {
      const output = [stderr.trimEnd(), ...recent].filter(Boolean).join('\n');
      reject(new Error(`${name} exited with ${code ?? signal} before ready:\n${output}`));
    });
  });
  return { proc, logs, ready, exited };
}

export interface Meshd {
  url: string;
  /** The peer data plane's URL. */
  peerUrl: string;
  /** libp2p peer id and dialable multiaddrs (with /p2p/<id>). */
  peerId: string;
  p2p: string[];
  /** host:port, as registry clients want it. */
  host: string;
  dataDir: string;
  proc: ChildProcess;
  logs: Record<string, unknown>[];
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** How long stop() waits for meshd to exit: above its own bounds (two listeners closed within --shutdown-grace, 10 s). */
const STOP_TIMEOUT_MS = 45_000;

/** The built meshd on 127.0.0.1, logging at debug; its data dir is a new temporary one (removed on stop) unless given. */
export async function startMeshd(args: string[] = [], opts: { dataDir?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Meshd> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'meshd-test-')));
  const meshd = spawnMeshd(['--data-dir', dataDir, ...loopbackListeners(), '--log-level', 'debug', ...args], { env: opts.env });
  const { proc } = meshd;
  // A meshd that hangs on its signal is killed, and the stop fails, rather than the hook that stops it timing out
  // (and skipping the cleanup after it, with this meshd left running).
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    try {
      if (await stopChild(proc, meshd.exited, signal, STOP_TIMEOUT_MS)) throw new Error(`meshd did not exit within ${STOP_TIMEOUT_MS / 1000} s of ${signal}: killed`);
      return await meshd.exited;
    } finally {
      if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    }
  };
  let ready: MeshdReadyLine;
  try {
    ready = await meshd.ready;
    if (ready.peer === undefined || ready.peerId === undefined || ready.p2p === undefined) {
      throw new Error(`meshd is ready without its mesh (no peer, peerId or p2p in ${JSON.stringify(ready)})`);
    }
  } catch (err) {
    await stop('SIGKILL');
    throw err;
  }
  const { registry: url, peer, peerId, p2p } = ready;
  return { url, peerUrl: peer, peerId, p2p, host: url.replace(/^http:\/\//, ''), dataDir, proc, logs: meshd.logs, stop };
}

/** Waits until `node` knows `peer` and the port of its data plane (meshctl peers): until then its mirror cannot ask it. */
export async function waitForDataPlane(node: Meshd, peer: Meshd): Promise<void> {
  await waitFor(`${node.url} to know ${peer.peerId} and its data plane`, async () => {
    const peers = JSON.parse(await run(process.execPath, [builtEntryPoints().meshctl, '--node', node.url, '--json', 'peers']));
    return peers.some((p: { id: string; info?: { dataPlanePort: number } }) => p.id === peer.peerId && p.info?.dataPlanePort);
  });
}
