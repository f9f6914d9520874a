#!/usr/bin/env -S node --max-semi-space-size=2 --expose-gc
// meshd: the LayerMesh daemon. Its Node.js options are on the line above, where every way of starting it reads them:
// a young generation of 2 MiB instead of V8's 16 holds less memory, also while streaming, for no more CPU; `gc`, exposed, lets
// uploads into containerd collect their dead buffers as they go (util/scavenge.ts, docs/benchmarks.md).
import '../polyfill.js';
import { pino } from 'pino';
import { ConfigError, parseConfig } from './config.js';
import { startDaemon } from './daemon.js';
import { reloadConfig } from './reload.js';
import { notifySystemd } from './sd-notify.js';

// The level is the configuration's (--log-level, MESHD_LOG_LEVEL), checked there: a wrong one is a clear error, not pino's throw.
const log = pino({ name: 'meshd', level: 'info' });
// sysexits' EX_CONFIG, which the unit's RestartPreventExitStatus names: a start that fails on its configuration fails again.
const EXIT_CONFIG = 78;
// With nobody reading the logs any more (a closed pipe), logging must not stop the daemon, its shutdown included.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
});

try {
  const argv = process.argv.slice(2);
  const config = parseConfig(argv);
  log.level = config.logLevel;
  const starting = startDaemon(config, log);
  // Reloads, one at a time in the order the signals came, and only once meshd runs: one asked while it starts
  // (`systemctl reload` just after a start) waits for it. Without this handler SIGHUP would end meshd, which
  // systemd takes for a clean exit and does not restart.
  let reloading: Promise<unknown> = starting.catch(() => undefined);
  process.on('SIGHUP', () => {
    log.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    reloading = reloading.then(() => starting).then((daemon) => reloadConfig({ argv, log, bandwidth: daemon.bandwidth, running: config }), () => undefined);
  });
  const daemon = await starting;
  await notifySystemd('ready', log);
  const shutdown = (signal: string) => {
    log.info({ signal }, 'signal received');
    notifySystemd('stopping', log)
      .then(() => daemon.stop())
      .then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'unclean shutdown');
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
} catch (err) {
  log.fatal({ err }, 'meshd cannot start');
  process.exitCode = err instanceof ConfigError ? EXIT_CONFIG : 1;
}
