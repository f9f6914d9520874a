// Runs a command for a test; failures carry its stderr.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export async function run(cmd: string, args: string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  try {
    const { stdout, stderr } = await exec(cmd, args, { maxBuffer: 64 << 20, timeout: opts.timeoutMs ?? 120_000 });
    return stdout + stderr;
  } catch (err) {
    const e = err as Error & { stderr?: string; stdout?: string };
    throw new Error(`${cmd} ${args.join(' ')} failed: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}

/** skopeo against a plain-HTTP registry, without a system policy file. */
export function skopeo(args: string[]): Promise<string> {
  return run('skopeo', ['--insecure-policy', ...args]);
}

export interface Outcome { code: number | null; stdout: string; stderr: string }

/** Runs a command to its end, whatever its exit status, and gives both outputs; killed after `timeoutMs`. */
export function outcomeOf(cmd: string, args: string[], { env = process.env, timeoutMs = 50_000 }: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
