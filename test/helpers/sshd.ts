// A real OpenSSH server for tests: its own host key, config, port and authorized key, all in a temp dir.
// pussh runs the system ssh client against it exactly as it would against a remote host.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePackages } from './apt.js';
import { freePort } from './ports.js';
import { spawnGroup } from './process-group.js';

const exec = promisify(execFile);

export interface SshKeys {
  dir: string;
  /** The key sshd accepts. */
  clientKey: string;
  /** A key sshd does not accept. */
  wrongKey: string;
  hostKey: string;
  authorizedKeys: string;
}

export interface Sshd {
  host: string;
  port: number;
  /** `root@127.0.0.1:<port>`, as pussh takes it. */
  target: string;
  keys: SshKeys;
  log: string;
  stop(): Promise<void>;
}

export async function ensureOpenSsh(): Promise<string> {
  await ensurePackages({ sshd: 'openssh-server', ssh: 'openssh-client', 'ssh-keygen': 'openssh-client' });
  // sshd re-executes itself and insists on an absolute path; its privilege separation needs /run/sshd.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin'])) {
    const path = join(dir, 'sshd');
    if (await exec(path, ['-V']).then(() => true, (err: { stderr?: string }) => /OpenSSH/.test(err.stderr ?? ''))) return path;
  }
  throw new Error('sshd not found after installing openssh-server');
}

async function keygen(path: string): Promise<void> {
  await exec('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'layermesh-test', '-f', path]);
}

/** Host key, an accepted client key and a refused one, in dir. */
export async function makeSshKeys(dir: string): Promise<SshKeys> {
  const keys = {
    dir,
    clientKey: join(dir, 'client_key'),
    wrongKey: join(dir, 'wrong_key'),
    hostKey: join(dir, 'host_key'),
    authorizedKeys: join(dir, 'authorized_keys'),
  };
  await Promise.all([keygen(keys.clientKey), keygen(keys.wrongKey), keygen(keys.hostKey)]);
  await writeFile(keys.authorizedKeys, await readFile(`${keys.clientKey}.pub`));
  return keys;
}

/** An sshd_config that needs nothing of the system's: no PAM, no strict modes, our files only. */
export async function writeSshdConfig(path: string, opts: { listen: string | string[]; port: number; keys: SshKeys; pidFile: string; maxStartups?: string }): Promise<void> {
  await writeFile(path, [
    `Port ${opts.port}`,
    ...[opts.listen].flat().map((address) => `ListenAddress ${address}`),
    `HostKey ${opts.keys.hostKey}`,
    `PidFile ${opts.pidFile}`,
    `AuthorizedKeysFile ${opts.keys.authorizedKeys}`,
    'UsePAM no',
    'StrictModes no',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PermitRootLogin prohibit-password',
    'AllowTcpForwarding yes',
    'X11Forwarding no',
    'PrintMotd no',
    'UseDNS no',
    'LogLevel VERBOSE',
    `MaxStartups ${opts.maxStartups ?? '10:30:100'}`, // OpenSSH's default, unless a test asks for less
    '',
  ].join('\n'));
}

/** Resolves once something on host:port greets like an SSH server. */
export async function waitForSsh(host: string, port: number, alive: () => boolean | Promise<boolean>, logFile: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const greeted = await new Promise<boolean>((resolve) => {
      const sock = connect({ host, port }, () => {});
      sock.setTimeout(1000, () => sock.destroy());
      sock.once('data', (d) => {
        resolve(d.toString('latin1').startsWith('SSH-2.0'));
        sock.destroy();
      });
      sock.once('error', () => resolve(false));
      sock.once('close', () => resolve(false));
    });
    if (greeted) return;
    const log = () => readFile(logFile, 'utf8').catch(() => '');
    if (!(await alive())) throw new Error(`sshd exited before it answered on ${host}:${port}:\n${await log()}`);
    if (Date.now() > deadline) throw new Error(`sshd did not answer on ${host}:${port} within ${timeoutMs} ms:\n${await log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * sshd on 127.0.0.1 (and other loopback addresses: at most 15 more) with a fresh port; stop() ends it and removes its
 * directory. `maxStartups`: connections not yet authenticated that it serves at once.
 */
export async function startSshd(opts: { alsoListen?: string[]; maxStartups?: string } = {}): Promise<Sshd> {
  const sshd = await ensureOpenSsh();
  const dir = await mkdtemp(join(tmpdir(), 'lm-sshd-'));
  try {
    const keys = await makeSshKeys(dir);
    const log = join(dir, 'sshd.log');
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const config = join(dir, 'sshd_config');
      await writeSshdConfig(config, { listen: ['127.0.0.1', ...(opts.alsoListen ?? [])], port, keys, pidFile: join(dir, 'sshd.pid'), maxStartups: opts.maxStartups });
      // Its own process group, so that stop() also ends the per-connection processes sshd forks.
      const daemon = spawnGroup(sshd, ['-D', '-e', '-f', config], log);
      const { alive } = daemon;
      const stop = async () => {
        await daemon.stop();
        await rm(dir, { recursive: true, force: true });
      };
      try {
        await waitForSsh('127.0.0.1', port, alive, log);
        return { host: '127.0.0.1', port, target: `root@127.0.0.1:${port}`, keys, log, stop };
      } catch (err) {
        await daemon.stop(0);
        // Another process may have taken the port between freePort() and sshd's bind.
        if (attempt < 3 && /Address already in use/.test((err as Error).message)) continue;
        throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
