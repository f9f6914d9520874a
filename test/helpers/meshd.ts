// Starts a real meshd process (the built dist/), waits until its registry answers.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { builtEntryPoints } from '../fleet/layout.js';

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

export async function startMeshd(args: string[] = [], opts: { dataDir?: string } = {}): Promise<Meshd> {
  const dataDir = opts.dataDir ?? (await mkdtemp(join(tmpdir(), 'meshd-test-')));
  const defaults = ['--data-dir', dataDir, '--registry-addr', '127.0.0.1:0', '--p2p-listen', '/ip4/127.0.0.1/tcp/0', '--peer-addr', '127.0.0.1:0', '--log-level', 'debug'];
  // Found from the repository root, so this works from test/helpers and from its build in dist/test/helpers.
  const proc = spawn(process.execPath, [builtEntryPoints().meshd, ...defaults, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const ready = new Promise<{ registry: string; peer: string; peerId: string; p2p: string[] }>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (line) => {
      try {
        const entry = JSON.parse(line);
        logs.push(entry);
        if (entry.msg === 'meshd ready') resolve(entry);
      } catch {
        logs.push({ raw: line });
      }
    });
    void exited.then((code) => reject(new Error(`meshd exited with ${code} before ready: ${stderr}\n${JSON.stringify(logs.slice(-5))}`)));
  });
  const { registry: url, peer, peerId, p2p } = await ready.catch(async (err) => {
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    throw err;
  });
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    const code = await exited;
    if (!opts.dataDir) await rm(dataDir, { recursive: true, force: true });
    return code;
  };
  return { url, peerUrl: peer, peerId, p2p, host: url.replace(/^http:\/\//, ''), dataDir, proc, logs, stop };
}
