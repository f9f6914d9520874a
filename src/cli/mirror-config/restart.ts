// `--restart`: containerd reads config.toml only when it starts. Restarted through systemd when systemd runs
// this host; otherwise we say what to restart rather than guess at a process to signal.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface RestartResult {
  restarted: boolean;
  /** what was done, or what the user has to do */
  detail: string;
}

export type Restarter = (config: string) => Promise<RestartResult>;

/** `systemctl restart containerd` when systemd is running (what sd_booted() checks); never throws. */
export const restartWithSystemd: Restarter = async (config) => {
  const yourself = `restart the containerd that reads ${config} yourself`;
  if (!existsSync('/run/systemd/system')) return { restarted: false, detail: `systemd does not run this host: ${yourself}` };
  try {
    await exec('systemctl', ['restart', 'containerd'], { timeout: 120_000 });
    return { restarted: true, detail: 'systemctl restart containerd' };
  } catch (err) {
    const e = err as Error & { stderr?: string };
    return { restarted: false, detail: `systemctl restart containerd failed (${e.stderr?.trim() || e.message}): ${yourself}` };
  }
};
