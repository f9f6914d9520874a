// SIGHUP (systemctl reload): meshd reads its configuration again (flags, MESHD_* variables and the --config
// file) and applies what can change while it runs: the log level and the bandwidth limits. Everything else
// waits for a restart, and is named in the log. A configuration that does not parse is logged and the running
// one kept.
import type { Logger } from 'pino';
import type { Bandwidth } from '../mirror/bandwidth.js';
import { parseConfig, type Config } from './config.js';
import { applyConfiguredLimits } from './limits.js';

export interface Reloadable {
  argv: string[];
  /** The root logger: its children follow its level. */
  log: Logger;
  bandwidth: Bandwidth;
  /** The configuration meshd started with: what differs from it, beyond what a reload applies, waits for a restart. */
  running: Config;
}

/** Applied by a reload; every other option only at a restart. */
const RELOADED: (keyof Config)[] = ['logLevel', 'limits'];

export async function reloadConfig({ argv, log, bandwidth, running }: Reloadable): Promise<void> {
  let config;
  try {
    config = parseConfig(argv);
  } catch (err) {
    log.error({ err }, 'reload failed: the configuration is unchanged');
    return;
  }
  const changed: Record<string, unknown> = {};
  if (log.level !== config.logLevel) {
    changed.logLevel = { from: log.level, to: config.logLevel };
    log.level = config.logLevel;
  }
  try {
    Object.assign(changed, await applyConfiguredLimits(bandwidth, running.dataDir, config.limits));
  } catch (err) {
    log.error({ err, limits: config.limits }, 'reload: the bandwidth limits could not be applied');
  }
  log.info({ changed }, Object.keys(changed).length ? 'configuration reloaded' : 'configuration reloaded: nothing changed');
  const waiting = (Object.keys(config) as (keyof Config)[])
    .filter((key) => !RELOADED.includes(key) && JSON.stringify(config[key]) !== JSON.stringify(running[key]));
  if (waiting.length) log.warn({ options: waiting }, 'reload: these options changed and take effect only when meshd restarts');
}
