// The registries under test: meshd (containerd or fs store) and Debian's Go docker-registry,
// each on 127.0.0.1 with its own temp state, each registered for cleanup.
import { execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startContainerd } from '../../test/helpers/containerd.js';
import { loopbackListeners, meshdCommand, spawnMeshd } from '../../test/helpers/meshd.js';
import { onCleanup } from './cleanup.js';
import { request } from './http.js';
import { freePort, pidsWithArg, stopChild } from './procs.js';

/** The built meshd; BENCH_MESHD_MAIN points the benchmark at another build (A/B of a change). */
export const MESHD_MAIN = process.env.BENCH_MESHD_MAIN || fileURLToPath(new URL('../../src/node/main.js', import.meta.url));
/** Node options every meshd runs with (BENCH_MESHD_NODE_FLAGS, space-separated): A/B of V8 settings. */
const MESHD_NODE_FLAGS = (process.env.BENCH_MESHD_NODE_FLAGS ?? '').split(' ').filter(Boolean);

export interface Server {
  /** Label in the result table. */
  name: string;
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, as skopeo wants it. */
  host: string;
  /** Processes doing the work (for CPU accounting). */
  pids: number[];
  stop(): Promise<void>;
}

let loopbackFlags: Promise<string[]> | undefined;

/**
 * Flags that keep every listener of this meshd build on loopback: builds with libp2p listen on
 * 0.0.0.0:4001 by default, builds with the peer data plane on 0.0.0.0:5001 (and two of them would
 * collide), so ask for 127.0.0.1 and a free port for whichever listeners this build has.
 */
function meshdLoopbackFlags(): Promise<string[]> {
  return (loopbackFlags ??= promisify(execFile)(process.execPath, [MESHD_MAIN, '--help']).then(
    ({ stdout }) => loopbackListeners((flag) => flag === '--registry-addr' || stdout.includes(flag)),
    () => loopbackListeners((flag) => flag === '--registry-addr'),
  ));
}

const tempDir = (prefix: string) => mkdtemp(join(tmpdir(), prefix));

/** A meshd with what its "meshd ready" line tells (mesh fields only from builds that have them). */
export interface MeshdServer extends Server {
  /** The peer data plane's URL. */
  peerUrl?: string;
  peerId?: string;
  /** Dialable libp2p multiaddrs, with /p2p/<id>. */
  p2p: string[];
  /** Its JSON log lines so far (the most recent 5,000). */
  logs: Record<string, unknown>[];
}

const MAX_LOG_ENTRIES = 5000;

/** meshd from dist/ (or BENCH_MESHD_MAIN), on 127.0.0.1:0; the URL comes from its "meshd ready" log line. */
export async function startMeshd(name: string, storeArgs: string[]): Promise<MeshdServer> {
  const loopback = await meshdLoopbackFlags();
  const dataDir = await tempDir('lm-bench-meshd-');
  const removeDir = onCleanup(`meshd data ${dataDir}`, () => rm(dataDir, { recursive: true, force: true }));
  const { proc, logs, ready: whenReady } = spawnMeshd(['--data-dir', dataDir, '--log-level', 'info', ...loopback, ...storeArgs], {
    main: MESHD_MAIN, name: `meshd (${name})`, maxLogs: MAX_LOG_ENTRIES, command: meshdCommand(MESHD_MAIN, MESHD_NODE_FLAGS),
  });
  const stopProc = onCleanup(`meshd pid ${proc.pid}`, () => stopChild(proc));
  try {
    const ready = await whenReady;
    const url = ready.registry;
    return {
      name,
      url,
      host: url.replace(/^http:\/\//, ''),
      peerUrl: ready.peer,
      peerId: ready.peerId,
      p2p: ready.p2p ?? [],
      logs,
      pids: [proc.pid!],
      stop: async () => {
        await stopProc();
        await removeDir();
      },
    };
  } catch (err) {
    await stopProc();
    await removeDir();
    throw err;
  }
}

export interface PrivateContainerd {
  socket: string;
  /** containerd's own process (for CPU accounting). */
  pids: number[];
  stop(): Promise<void>;
}

/**
 * A private containerd (CRI off, own root/state/socket, namespaces isolated from each other's content,
 * see writeContainerdConfig), registered for cleanup.
 */
export async function startPrivateContainerd(): Promise<PrivateContainerd> {
  const containerd = await startContainerd();
  const stop = onCleanup(`containerd ${containerd.socket}`, () => containerd.stop());
  try {
    return { socket: containerd.socket, pids: await pidsWithArg(join(dirname(containerd.socket), 'config.toml')), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** A private containerd with meshd `--store containerd` on it. */
export async function startMeshdOnContainerd(name: string): Promise<Server> {
  const containerd = await startPrivateContainerd();
  try {
    const meshd = await startMeshd(name, ['--store', 'containerd', '--containerd-socket', containerd.socket, '--containerd-namespace', 'bench']);
    return {
      ...meshd,
      pids: [...meshd.pids, ...containerd.pids],
      stop: async () => {
        await meshd.stop();
        await containerd.stop();
      },
    };
  } catch (err) {
    await containerd.stop();
    throw err;
  }
}

/** docker-registry's config: filesystem storage under dir/data, delete enabled, quiet; returns its path. */
export async function writeDockerRegistryConfig(dir: string, addr: string): Promise<string> {
  const config = join(dir, 'config.yml');
  await writeFile(config, [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(join(dir, 'data'))}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: ${addr}`,
    '',
  ].join('\n'));
  return config;
}

/** Debian's docker-registry (github.com/docker/distribution 2.8): filesystem storage, delete enabled, quiet. */
export async function startDockerRegistry(name: string): Promise<Server> {
  const dir = await tempDir('lm-bench-registry-');
  const removeDir = onCleanup(`docker-registry dir ${dir}`, () => rm(dir, { recursive: true, force: true }));
  let stopProc: (() => Promise<void>) | undefined;
  try {
    const port = await freePort();
    const config = await writeDockerRegistryConfig(dir, `127.0.0.1:${port}`);
    const logPath = join(dir, 'registry.log');
    const log = openSync(logPath, 'a');
    const proc = spawn('docker-registry', ['serve', config], { stdio: ['ignore', log, log] });
    closeSync(log);
    proc.once('error', () => {}); // reported through the exit check below
    stopProc = onCleanup(`docker-registry pid ${proc.pid}`, () => stopChild(proc));
    const url = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        const text = await readFile(logPath, 'utf8').catch(() => '');
        throw new Error(`docker-registry exited (${proc.exitCode ?? proc.signalCode}):\n${text.split('\n').slice(-20).join('\n')}`);
      }
      const ok = await request('GET', `${url}/v2/`).then((r) => r.status === 200, () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`docker-registry did not answer on ${url} within 15 s`);
      await new Promise((r) => setTimeout(r, 50));
    }
    return {
      name,
      url,
      host: `127.0.0.1:${port}`,
      pids: [proc.pid!],
      stop: async () => {
        await stopProc!();
        await removeDir();
      },
    };
  } catch (err) {
    await stopProc?.();
    await removeDir();
    throw err;
  }
}
