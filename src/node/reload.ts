// SIGHUP (systemctl reload): meshd reads its configuration again (flags, MESHD_* variables and the --config
// file) and applies what can change while it runs: the log level and the bandwidth limits. Everything else
// waits for a restart. A configuration that does not parse is logged and the running one kept.
import type { Logger } from 'pino';
import type { Bandwidth } from '../mirror/bandwidth.js';
import { parseConfig } from './config.js';
import { applyConfiguredLimits } from './limits.js';

export interface Reloadable {
  argv: string[];
  /** The root logger: its children follow its level. */
  log: Logger;
  bandwidth: Bandwidth;
  /** The running data dir (where `meshctl limit` keeps its limits); a reload does not move it. */
  dataDir: string;
}

export async function reloadConfig({ argv, log, bandwidth, dataDir }: Reloadable): Promise<void> {
  let config;
  try {
    config = parseConfig(argv);
    if (!log.levels.values[config.logLevel]) throw new Error(`unknown log level "${config.logLevel}"`);
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
    Object.assign(changed, await applyConfiguredLimits(bandwidth, dataDir, config.limits));
  } catch (err) {
    log.error({ err, limits: config.limits }, 'reload: the bandwidth limits could not be applied');
  }
  log.info({ changed }, Object.keys(changed).length ? 'configuration reloaded' : 'configuration reloaded: nothing changed');
}
