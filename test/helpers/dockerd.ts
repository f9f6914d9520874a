// A private Docker daemon for tests: its own socket, data root, exec root and pid file in a temp dir, no
// bridge and no iptables, so that nothing of the machine's Docker (if any) is touched.
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackages } from './apt.js';
import { mountPoints } from './procfs.js';
import { run } from './run.js';
import { spawnGroup } from './process-group.js';

/**
 * Debian's docker.io CLI; another docker CLI earlier on PATH (e.g. in /usr/local/bin) is not what we test. Asked
 * at each use: on a fresh machine it exists only once startDockerd has installed docker.io.
 */
export function dockerCli(): string {
  return existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';
}

export interface Dockerd {
  /** unix:///…/docker.sock */
  host: string;
  socket: string;
  dir: string;
  log: string;
  /** Runs the docker CLI against this daemon. */
  docker(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

function pinged(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: '/_ping' }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.end();
  });
}

export async function startDockerd(): Promise<Dockerd> {
  await ensurePackages({ dockerd: 'docker.io' });
  // Short, since unix socket paths are limited to 108 bytes.
  const dir = await mkdtemp(join(tmpdir(), 'lm-dockerd-'));
  const socket = join(dir, 'docker.sock');
  const host = `unix://${socket}`;
  const log = join(dir, 'dockerd.log');
  // vfs needs no kernel overlay support inside a container; the images here are small.
  const daemon = spawnGroup('dockerd', [
    '--host', host, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '--pidfile', join(dir, 'docker.pid'),
    '--bridge=none', '--iptables=false', '--ip-masq=false', '--storage-driver=vfs',
  ], log);
  const { alive } = daemon;
  const stop = async () => {
    await daemon.stop(); // dockerd ends the containerd it started itself; SIGKILL only if it hangs
    for (const m of (await mountPoints()).filter((p) => p.startsWith(dir)).reverse()) await run('umount', ['-l', m]).catch(() => {});
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const deadline = Date.now() + 60_000;
    while (!(await pinged(socket))) {
      if (!alive()) throw new Error(`dockerd exited before it answered:\n${await readFile(log, 'utf8')}`);
      if (Date.now() > deadline) throw new Error(`dockerd did not answer on ${socket} within 60 s:\n${await readFile(log, 'utf8')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, socket, dir, log, docker: (args) => run(dockerCli(), ['-H', host, ...args]), stop };
}
