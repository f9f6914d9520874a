// A private containerd for integration tests: own root, state and sockets in a fresh temp dir.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { mountPoints } from './procfs.js';
import { stopChild } from './stop-child.js';

const run = promisify(execFile);

export interface TestContainerd {
  socket: string;
  root: string;
  state: string;
  config: string;
  /** Stops it and starts it again with the same config file, which it reads again. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Runs `ctr --address <socket> ...args` and returns stdout; throws with ctr's stderr on failure. */
export async function ctr(socket: string, args: string[]): Promise<string> {
  try {
    const { stdout } = await run('ctr', ['--address', socket, ...args], { maxBuffer: 64 << 20 });
    return stdout;
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`ctr ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

export interface ContainerdPaths {
  config: string;
  socket: string;
  root: string;
  state: string;
}

/** Writes `<dir>/config.toml` for a containerd whose root, state and sockets all live in dir (also used by test/fleet). */
export async function writeContainerdConfig(dir: string, opts: { cri?: boolean } = {}): Promise<ContainerdPaths> {
  const root = join(dir, 'root');
  const state = join(dir, 'state');
  const socket = join(dir, 'containerd.sock'); // short on purpose: unix socket paths are limited to 108 bytes
  const config = join(dir, 'config.toml');
  // Top-level disabled_plugins: on 1.6 a per-plugin `disable = true` leaves CRI running.
  // The overlayfs snapshotter stays, so `ctr images pull` can unpack.
  await writeFile(config, [
    'version = 2',
    `root = ${JSON.stringify(root)}`,
    `state = ${JSON.stringify(state)}`,
    ...(opts.cri ? [] : ['disabled_plugins = ["io.containerd.grpc.v1.cri"]']),
    '[grpc]',
    `  address = ${JSON.stringify(socket)}`,
    '[ttrpc]',
    `  address = ${JSON.stringify(`${socket}.ttrpc`)}`,
    '[plugins."io.containerd.internal.v1.opt"]',
    `  path = ${JSON.stringify(join(dir, 'opt'))}`,
    // Tests use namespaces as separate hosts: with the default "shared" policy a namespace silently
    // takes content another namespace already has, and a mirror test would prove nothing.
    '[plugins."io.containerd.metadata.v1.bolt"]',
    '  content_sharing_policy = "isolated"',
    '',
  ].join('\n'));
  return { config, socket, root, state };
}

/**
 * `prepare` runs before containerd starts, e.g. to mount a small tmpfs under its root; stop() unmounts it.
 * `cri` keeps the CRI plugin (disabled otherwise), for tests of what CRI reads from the config.
 */
export async function startContainerd(opts: { prepare?: (paths: ContainerdPaths) => Promise<void>; cri?: boolean } = {}): Promise<TestContainerd> {
  const dir = await mkdtemp(join(tmpdir(), 'lm-containerd-'));
  const { config, socket, root, state } = await writeContainerdConfig(dir, { cri: opts.cri });
  try {
    await opts.prepare?.({ config, socket, root, state });
  } catch (err) {
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }

  const logPath = join(dir, 'containerd.log');
  const launch = () => {
    const log = openSync(logPath, 'a');
    const child = spawn('containerd', ['--config', config], { stdio: ['ignore', log, log] });
    closeSync(log);
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.once('error', () => {}); // surfaced through `exited` and the log below
    return { child, exited };
  };
  let running = launch();

  const stop = async () => {
    await kill(running.child, running.exited);
    await unmountUnder(dir);
    await rm(dir, { recursive: true, force: true });
  };
  const restart = async () => {
    await kill(running.child, running.exited);
    running = launch();
    await waitUntilAnswering(socket, running.child, logPath);
  };

  try {
    await waitUntilAnswering(socket, running.child, logPath);
  } catch (err) {
    await stop();
    throw err;
  }
  return { socket, root, state, config, restart, stop };
}

async function waitUntilAnswering(socket: string, child: ChildProcess, logPath: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`containerd exited (${child.exitCode ?? child.signalCode}): ${await tail(logPath)}`);
    }
    try {
      await ctr(socket, ['version']);
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`containerd did not answer on ${socket} within 30 s: ${await tail(logPath)}`, { cause: err });
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SIGTERM, then SIGKILL if it is still running after 10 s. */
async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  await stopChild(child, exited, 'SIGTERM', 10_000);
}

/** Unmounts everything mounted below dir (snapshots, shim state), deepest first; lazily when busy. */
export async function unmountUnder(dir: string): Promise<void> {
  const points = (await mountPoints()).filter((p) => p.startsWith(`${dir}/`)).sort((a, b) => b.length - a.length);
  for (const point of points) {
    try {
      await run('umount', ['-R', point]);
    } catch {
      await run('umount', ['-l', point]).catch(() => {}); // may already be gone with its parent
    }
  }
}

async function tail(path: string): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text.split('\n').slice(-20).join('\n');
}

/**
 * Imports an OCI layout (test/helpers/oci-image.ts) with `ctr images import`, not through meshd, so that a
 * test's setup does not depend on the code under test. `ctr` runs ctr with these arguments (here, or inside
 * a fleet host); the layout's tar is made in scratchDir. Returns the name containerd holds: `<repo>:<tag>`.
 */
export async function importLayout(image: { dir: string; tag: string }, opts: {
  repo?: string; unpack?: boolean; scratchDir: string; ctr: (args: string[]) => Promise<unknown>;
}): Promise<string> {
  const repo = opts.repo ?? 'docker.io/library/app';
  const archive = join(opts.scratchDir, `import-${randomBytes(4).toString('hex')}.tar`);
  try {
    await run('tar', ['-C', image.dir, '-cf', archive, '.']);
    await opts.ctr(['images', 'import', '--base-name', repo, '--all-platforms', ...(opts.unpack ? [] : ['--no-unpack']), archive]);
  } finally {
    await rm(archive, { force: true });
  }
  return `${repo}:${image.tag}`;
}

/** Removes a namespace of the test containerd with everything in it (images, leases, content). */
export async function removeNamespace(socket: string, ns: string): Promise<void> {
  const list = async (args: string[]) => (await ctr(socket, ['-n', ns, ...args])).split('\n').map((l) => l.trim()).filter(Boolean);
  const names = await list(['images', 'ls', '-q']).catch(() => undefined);
  if (names === undefined) return; // no such namespace
  if (names.length) await ctr(socket, ['-n', ns, 'images', 'rm', ...names]);
  const leases = await list(['leases', 'ls', '-q']);
  if (leases.length) await ctr(socket, ['-n', ns, 'leases', 'rm', ...leases]);
  const content = await list(['content', 'ls', '-q']);
  if (content.length) await ctr(socket, ['-n', ns, 'content', 'rm', ...content]);
  await ctr(socket, ['namespaces', 'rm', ns]);
}

/** A unix socket at `path` in front of containerd's `target` that passes everything on until stall(): then nothing more, either way. */
export async function containerdProxy(target: string, path: string): Promise<{ stall(): void; close(): Promise<void> }> {
  const pairs: Socket[][] = [];
  const server = createServer((client) => {
    const upstream = connect(target);
    client.pipe(upstream).pipe(client);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    pairs.push([client, upstream]);
  });
  await new Promise<void>((r) => server.listen(path, r));
  return {
    stall: () => pairs.flat().forEach((s) => s.pause()),
    close: async () => {
      pairs.flat().forEach((s) => s.destroy());
      await new Promise((r) => server.close(r));
    },
  };
}
