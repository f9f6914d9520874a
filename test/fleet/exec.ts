// Runs one command and collects its output. Failures name the command, where it ran, its exit status and
// stderr, because a fleet runs hundreds of `ip`/`tc`/`ctr` commands and "exit 1" alone says nothing.
import { spawn } from 'node:child_process';

export interface ExecResult {
  /** Exit status; -1 when killed by a signal (see `signal`). */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Killed (SIGKILL) after this long; default 120 s. */
  timeoutMs?: number;
  /** Written to the command's stdin. */
  input?: string | Buffer;
  /** Prefixed to error messages, e.g. `host h2`. */
  context?: string;
  env?: NodeJS.ProcessEnv;
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly result: ExecResult,
  ) {
    super(message);
    this.name = 'CommandError';
  }
}

/** Runs cmd and resolves with its result whatever the exit status; rejects only when it cannot be started. */
export function tryExec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`${prefix(opts)}cannot run ${describe(cmd, args)}: ${e.message}`, { cause: e }));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.on('error', () => {}); // a command that exits without reading its input is not our failure
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs cmd and resolves with its stdout; rejects with a CommandError unless it exits 0. */
export async function exec(cmd: string, args: string[], opts: ExecOptions = {}): Promise<string> {
  const result = await tryExec(cmd, args, opts);
  if (result.code !== 0) {
    const status = result.signal ? `was killed by ${result.signal}` : `exited with ${result.code}`;
    const detail = (result.stderr.trim() || result.stdout.trim()).split('\n').slice(-10).join('\n');
    throw new CommandError(`${prefix(opts)}${describe(cmd, args)} ${status}${detail ? `: ${detail}` : ''}`, result);
  }
  return result.stdout;
}

function prefix(opts: ExecOptions): string {
  return opts.context ? `${opts.context}: ` : '';
}

function describe(cmd: string, args: string[]): string {
  const line = [cmd, ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a))).join(' ');
  return line.length > 300 ? `${line.slice(0, 300)}…` : line;
}
