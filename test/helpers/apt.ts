// Installs missing Debian packages for integration tests (this machine is Debian and tests run as root).
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
let updated = false;

export async function hasCommand(command: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter).filter(Boolean)) {
    try {
      await access(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not in this directory
    }
  }
  return false;
}

/** For each command missing from PATH, installs its Debian package: `{ ctr: 'containerd', skopeo: 'skopeo' }`. */
export async function ensurePackages(pkgs: Record<string, string>): Promise<void> {
  const missing: string[] = [];
  for (const [command, pkg] of Object.entries(pkgs)) {
    if (!(await hasCommand(command)) && !missing.includes(pkg)) missing.push(pkg);
  }
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing commands need the Debian packages ${missing.join(', ')}; install them as root (apt-get install ${missing.join(' ')}) or run the tests as root`);
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    if (!updated) {
      await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'update'], { env, maxBuffer: 64 << 20 });
      updated = true;
    }
    // Another test file (or another run) may hold dpkg's lock: wait for it rather than fail.
    await run('apt-get', ['-o', 'DPkg::Lock::Timeout=300', 'install', '-y', ...missing], { env, maxBuffer: 64 << 20 });
  } catch (err) {
    const e = err as Error & { stderr?: string };
    throw new Error(`apt-get could not install ${missing.join(', ')}: ${e.stderr?.trim() || e.message}`, { cause: err });
  }
}
