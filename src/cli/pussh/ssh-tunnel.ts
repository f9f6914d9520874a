// The tunnel to a remote meshd: the system's `ssh` client (so ~/.ssh/config, agents, keys and jump hosts
// work as they do for the user) forwards a local unix socket to the registry on the remote's loopback.
// A unix socket in a private directory, not a local TCP port: no other local user can push through it.
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PusshError } from './errors.js';
import type { SshTarget } from './refs.js';

export interface TunnelOptions {
  target: SshTarget;
  /** The registry as seen from the remote host. */
  remote: { host: string; port: number };
  identity?: string;
  noHostKeyCheck?: boolean;
  /** Extra `-o` options, given before ours so that they win (ssh keeps the first value of an option). */
  sshOptions?: string[];
  /** Whether ssh may ask for a password or passphrase on the terminal; otherwise BatchMode. */
  interactive?: boolean;
  /** The ssh client to run (tests, or a wrapper); default `ssh` from PATH. */
  sshCommand?: string;
  /** How long to wait for the forward to be in place; ssh's own ConnectTimeout covers an unreachable host. */
  timeoutMs?: number;
}

export interface Tunnel {
  /** The local end: HTTP to this socket reaches the remote registry. */
  socketPath: string;
  /** What ssh wrote on stderr so far (it says why a forwarded connection failed). */
  stderr(): string;
  /** Whether ssh still runs after `withinMs`: a forwarded connection that failed meanwhile was closed at the far end. */
  outlives(withinMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** The argument list for ssh (exported for the unit test). */
export function sshArgs(opts: TunnelOptions, socketPath: string): string[] {
  const { target, remote } = opts;
  const remoteHost = remote.host.includes(':') ? `[${remote.host}]` : remote.host;
  const args = ['-N', '-T'];
  for (const o of opts.sshOptions ?? []) args.push('-o', o);
  if (opts.noHostKeyCheck) {
    // Not LogLevel=ERROR against the "permanently added" warning: it would also hide why a forward failed.
    args.push('-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'GlobalKnownHostsFile=/dev/null');
  }
  args.push(
    '-o', 'ExitOnForwardFailure=yes',
    '-o', 'StreamLocalBindUnlink=yes',
    // A shared master from the user's ControlMaster settings would own our forward and outlive us.
    '-o', 'ControlMaster=no', '-o', 'ControlPath=none',
    '-o', 'ConnectTimeout=15',
    '-o', 'ServerAliveInterval=15', '-o', 'ServerAliveCountMax=3',
  );
  if (!opts.interactive) args.push('-o', 'BatchMode=yes');
  if (opts.identity) args.push('-i', opts.identity);
  if (target.port !== undefined) args.push('-p', String(target.port));
  if (target.user) args.push('-l', target.user);
  args.push('-L', `${socketPath}:${remoteHost}:${remote.port}`, '--', target.host);
  return args;
}

/** What ssh said, less the "permanently added" notice that --no-host-key-check causes on every connection. */
export function sshSaid(stderr: string): string {
  return stderr.trim().split('\n').filter((l) => l && !/^Warning: Permanently added/.test(l)).join('\n');
}

/** Turns what ssh said when it gave up into the error the user needs. */
export function sshFailure(target: SshTarget, stderr: string, exit: string): PusshError {
  const said = sshSaid(stderr) || `ssh exited with ${exit}`;
  const on = `ssh to ${target.display}`;
  if (/Permission denied|Too many authentication failures|no more authentication methods|Authentication failed/i.test(said)) {
    return new PusshError('ssh-auth', `${on}: authentication failed (check the user, -i/--ssh-key or your ssh agent):\n${said}`);
  }
  if (/Host key verification failed|REMOTE HOST IDENTIFICATION HAS CHANGED|host key .* not known|No .* host key is known/i.test(said)) {
    return new PusshError('ssh-auth', `${on}: the host key could not be verified (add it to known_hosts, e.g. with ssh-keyscan, or pass --no-host-key-check):\n${said}`);
  }
  if (/Could not resolve hostname|Connection refused|Connection timed out|Operation timed out|No route to host|Network is unreachable|Connection reset|Connection closed by|kex_exchange_identification|banner exchange/i.test(said)) {
    return new PusshError('ssh-unreachable', `${on}: host unreachable:\n${said}`);
  }
  if (/forwarding|cannot listen|Address already in use/i.test(said)) {
    return new PusshError('failed', `${on}: could not set up the forward to the registry:\n${said}`);
  }
  return new PusshError('ssh-unreachable', `${on} failed (${exit}):\n${said}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function stopSsh(child: ChildProcess, done: Promise<unknown>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  child.kill('SIGTERM');
  const force = setTimeout(() => child.kill('SIGKILL'), 3000);
  return done.then(() => clearTimeout(force));
}

/**
 * The ssh processes and socket directories of tunnels not closed yet, still connecting or in use. A signal ends
 * pussh with process.exit, which runs no pending cleanup: they are stopped on the way out, or ssh would go on
 * holding its forward, and connecting, with nobody to close it.
 */
const open = new Map<ChildProcess, string>();
function closeAllAtExit(): void {
  for (const [child, dir] of open) {
    child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts ssh and resolves once its local socket is there; rejects with ssh's own words if it gives up. */
export async function openTunnel(opts: TunnelOptions): Promise<Tunnel> {
  const dir = await mkdtemp(join(tmpdir(), 'pussh-'));
  const socketPath = join(dir, 'registry.sock');
  let stderr = '';
  const child = spawn(opts.sshCommand ?? 'ssh', sshArgs(opts, socketPath), { stdio: ['ignore', 'ignore', 'pipe'] });
  if (open.size === 0) process.once('exit', closeAllAtExit);
  open.set(child, dir);
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    stderr = (stderr + s).slice(-16_384);
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => (spawnError = err));
  const exited = new Promise<string>((resolve) => child.once('close', (code, signal) => resolve(signal ? `signal ${signal}` : `exit status ${code}`)));
  let exit: string | undefined;
  void exited.then((e) => (exit = e));
  const close = async () => {
    await stopSsh(child, exited);
    await rm(dir, { recursive: true, force: true });
    open.delete(child);
    if (open.size === 0) process.off('exit', closeAllAtExit);
  };
  const deadline = Date.now() + (opts.timeoutMs ?? 60_000);
  try {
    for (;;) {
      if (spawnError) {
        const missing = (spawnError as NodeJS.ErrnoException).code === 'ENOENT';
        throw new PusshError('failed', missing ? `no ssh client found (${opts.sshCommand ?? 'ssh'}); install OpenSSH (Debian: apt-get install openssh-client)` : `cannot run ssh: ${spawnError.message}`);
      }
      if (exit !== undefined) throw sshFailure(opts.target, stderr, exit);
      if (await stat(socketPath).then((s) => s.isSocket(), () => false)) break;
      if (!opts.interactive && Date.now() > deadline) {
        throw new PusshError('ssh-unreachable', `ssh to ${opts.target.display}: no connection after ${Math.round((opts.timeoutMs ?? 60_000) / 1000)} s${stderr ? `:\n${stderr.trim()}` : ''}`);
      }
      await sleep(25);
    }
  } catch (err) {
    await close();
    throw err;
  }
  const outlives = (withinMs: number) => Promise.race([exited.then(() => false), sleep(withinMs).then(() => exit === undefined)]);
  return { socketPath, stderr: () => stderr, outlives, close };
}
