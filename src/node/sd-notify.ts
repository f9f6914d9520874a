// Tells systemd (a Type=notify unit) that meshd is ready or stopping. Node cannot send on a unix datagram
// socket, so systemd-notify sends for us; the unit therefore needs NotifyAccess=all. systemd-notify waits
// until systemd has read the message (a barrier), so it is not lost when the helper exits at once.
import { execFile } from 'node:child_process';
import type { Logger } from 'pino';

export type SystemdState = 'ready' | 'stopping';

const ARGS: Record<SystemdState, string[]> = {
  // MAINPID: the helper is not the main process; meshd is.
  ready: ['--ready', `--pid=${process.pid}`],
  // systemd 252 (Debian 12) has no --stopping flag; a variable assignment works on every version.
  stopping: ['STOPPING=1'],
};

const TIMEOUT_MS = 5_000;

/** Sends the state when systemd asked for notifications (NOTIFY_SOCKET set); a failure is logged, never thrown. */
export function notifySystemd(state: SystemdState, log: Logger): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return Promise.resolve();
  return new Promise((resolve) => {
    execFile('systemd-notify', ARGS[state], { timeout: TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err) log.error({ err, stderr: stderr.trim(), state, socket: process.env.NOTIFY_SOCKET }, 'cannot notify systemd');
      else log.debug({ state }, 'systemd notified');
      resolve();
    });
  });
}
