// Runs a command for a test; failures carry its stderr.
import { execFile } from 'node:child_process';
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
