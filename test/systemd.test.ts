// meshd under systemd: the shipped unit passes systemd-analyze, meshd tells a notify socket it is ready and
// stopping, and SIGHUP (systemctl reload) re-reads the log level and the bandwidth limits.
import { spawn, execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { ensurePackages } from './helpers/apt.js';
import { loopbackListeners, spawnMeshd, type SpawnedMeshd } from './helpers/meshd.js';
import { waitFor } from './helpers/wait.js';
import { builtEntryPoints, repoRoot } from './fleet/layout.js';
import { cleanUp } from './helpers/cleanups.js';
import { containerdProxy } from './helpers/containerd.js';

const run = promisify(execFile);
const UNIT = join(repoRoot(), 'config/meshd.service');

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(() => cleanUp(cleanups));

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'meshd-systemd-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function meshd(args: string[], env?: NodeJS.ProcessEnv): SpawnedMeshd {
  const m = spawnMeshd(args, { env });
  cleanups.push(async () => {
    if (m.proc.exitCode === null && m.proc.signalCode === null) m.proc.kill('SIGKILL');
    await m.exited;
  });
  return m;
}

/** A unix datagram socket as systemd's NOTIFY_SOCKET (Node cannot bind one: python3 listens) and what it received. */
async function fakeNotifySocket(dir: string): Promise<{ path: string; messages: string[] }> {
  await ensurePackages({ python3: 'python3' });
  const path = join(dir, 'notify.sock');
  const script = 'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("listening",flush=True)\n'
    + 'while True: print(s.recv(4096).decode().replace("\\n"," "),flush=True)';
  const proc = spawn('python3', ['-c', script, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(async () => proc.kill());
  const messages: string[] = [];
  createInterface({ input: proc.stdout }).on('line', (line) => messages.push(line));
  await waitFor('the notify socket to listen', () => messages.includes('listening'));
  return { path, messages };
}

describe('the systemd unit', () => {
  it('passes systemd-analyze verify', async () => {
    await ensurePackages({ 'systemd-analyze': 'systemd' });
    // verify insists that ExecStart exists: the copy runs the build through a wrapper where the package puts /usr/bin/meshd.
    const dir = await tempDir();
    const wrapper = join(dir, 'meshd');
    await writeFile(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${builtEntryPoints().meshd}" "$@"\n`);
    await chmod(wrapper, 0o755);
    const unit = await readFile(UNIT, 'utf8');
    expect(unit).toContain('ExecStart=/usr/bin/meshd ');
    await writeFile(join(dir, 'meshd.service'), unit.replace('ExecStart=/usr/bin/meshd ', `ExecStart=${wrapper} `));
    const { stdout, stderr } = await run('systemd-analyze', ['verify', join(dir, 'meshd.service')]);
    // Unknown or misspelt keys are only warned about: any word on the unit is a failure.
    expect(`${stdout}${stderr}`.split('\n').filter((l) => l.includes('meshd.service'))).toEqual([]);
  });
});

describe('meshd and systemd', () => {
  it('says READY=1 when it serves and STOPPING=1 at SIGTERM', async () => {
    const dir = await tempDir();
    const notify = await fakeNotifySocket(dir);
    const m = meshd(['--data-dir', join(dir, 'data'), '--store', 'fs', ...loopbackListeners()], { ...process.env, NOTIFY_SOCKET: notify.path });
    await m.ready;
    const ready = await waitFor('READY=1', () => notify.messages.find((l) => l.startsWith('READY=1')));
    expect(ready).toContain(`MAINPID=${m.proc.pid}`);
    expect(notify.messages.some((l) => l.includes('STOPPING=1'))).toBe(false);
    m.proc.kill('SIGTERM');
    expect(await m.exited).toBe(0);
    expect(notify.messages.some((l) => l.includes('STOPPING=1'))).toBe(true);
    expect(m.logs.filter((l) => l.msg === 'cannot notify systemd')).toEqual([]);
  });

  it('reloads the log level and the bandwidth limits at SIGHUP, and keeps running on a bad file', async () => {
    const dir = await tempDir();
    const dataDir = join(dir, 'data');
    const config = join(dir, 'meshd.yaml');
    await writeFile(config, 'log-level: info\nupload-limit: 10MB\n');
    const m = meshd(['--config', config, '--data-dir', dataDir, '--store', 'fs', ...loopbackListeners()]);
    const { registry } = await m.ready;
    const limits = async () => (await (await fetch(`${registry}/_mesh/v1/limits`)).json()) as Record<string, number>;
    expect(await limits()).toEqual({ upload: 10_000_000 });
    // A change with meshctl limit is kept in the data dir; a reload puts the file back in charge.
    expect((await fetch(`${registry}/_mesh/v1/limits?download=5MB`, { method: 'PUT' })).status).toBe(200);
    expect(existsSync(join(dataDir, 'limits.json'))).toBe(true);

    await writeFile(config, 'log-level: debug\nupload-limit: 20MB\nreplication-limit: 1MB\nreplicate: none\n');
    m.proc.kill('SIGHUP');
    const reloaded = await waitFor('the reload', () => m.logs.find((l) => l.msg === 'configuration reloaded'));
    const waiting = await waitFor('what waits for a restart', () => m.logs.find((l) => String(l.msg).startsWith('reload: these options changed')));
    expect(waiting.options).toEqual(['replicate']);
    expect(reloaded.changed).toEqual({
      logLevel: { from: 'info', to: 'debug' },
      upload: { from: 10_000_000, to: 20_000_000 },
      download: { from: 5_000_000 },
      replication: { to: 1_000_000 },
    });
    expect(await limits()).toEqual({ upload: 20_000_000, replication: 1_000_000 });
    expect(existsSync(join(dataDir, 'limits.json'))).toBe(false);
    // Debug entries now appear: a new upload is one.
    expect((await fetch(`${registry}/v2/app/blobs/uploads/`, { method: 'POST' })).status).toBe(202);
    await waitFor('a debug entry', () => m.logs.some((l) => l.msg === 'upload started'));

    await writeFile(config, 'log-level: [not a level\n');
    m.proc.kill('SIGHUP');
    await waitFor('the failed reload', () => m.logs.find((l) => l.msg === 'reload failed: the configuration is unchanged'));
    expect(m.proc.exitCode).toBe(null);
    expect(await limits()).toEqual({ upload: 20_000_000, replication: 1_000_000 });
  });

  it('takes a reload asked while it starts once it runs, instead of ending (systemctl reload just after a start)', async () => {
    const dir = await tempDir();
    const config = join(dir, 'meshd.yaml');
    await writeFile(config, 'log-level: info\n');
    // containerd's socket there but silent: meshd waits for it, a start that lasts.
    const socket = join(dir, 'containerd.sock');
    await writeFile(socket, '');
    const m = meshd(['--config', config, '--data-dir', join(dir, 'data'), '--store', 'auto', '--containerd-socket', socket,
      '--containerd-namespace', `reload-${process.pid}`, ...loopbackListeners()]);
    await waitFor('meshd to wait for containerd', () => m.logs.some((l) => String(l.msg).includes('waiting for it')));
    await writeFile(config, 'log-level: debug\n');
    m.proc.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    expect(m.proc.signalCode, 'meshd ended at SIGHUP').toBe(null);
    expect(m.logs.some((l) => l.msg === 'configuration reloaded'), 'reloaded before it runs').toBe(false);

    await rm(socket);
    const proxy = await containerdProxy(inject('containerdSocket'), socket);
    cleanups.push(() => proxy.close());
    await m.ready;
    const reloaded = await waitFor('the reload', () => m.logs.find((l) => l.msg === 'configuration reloaded'));
    expect(reloaded.changed).toEqual({ logLevel: { from: 'info', to: 'debug' } });
  });
});
