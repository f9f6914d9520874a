// The node's bandwidth limits: from the flags, unless `meshctl limit` changed them, in which case the change
// is kept in the data dir and outlives restarts. GET/PUT /_mesh/v1/limits on the admin listener (a PUT is a
// write: root, the write group or the token).
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import type { BandwidthLimits, Traffic } from '../mirror/bandwidth.js';
import { Bandwidth } from '../mirror/bandwidth.js';
import { RegistryError } from '../registry/errors.js';
import { writeAtomically } from '../util/atomic-file.js';
import { parseSize } from './size.js';

const TRAFFIC: Traffic[] = ['upload', 'download', 'replication'];
const FILE = 'limits.json';

/** `50MB` (per second), or `off`/`none`/`0` for no limit; `option` names where the text came from in the error. */
export function parseLimit(text: string, option?: string): number | undefined {
  if (['off', 'none', '0', ''].includes(text.trim().toLowerCase())) return undefined;
  return parseSize(text.replace(/\/s$/i, ''), option);
}

export async function openBandwidth(dataDir: string, flags: BandwidthLimits, log: Logger): Promise<Bandwidth> {
  const file = join(dataDir, FILE);
  let kept: BandwidthLimits | undefined;
  try {
    kept = JSON.parse(await readFile(file, 'utf8')) as BandwidthLimits;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`reading bandwidth limits ${file}: ${(err as Error).message}`, { cause: err });
  }
  if (kept) log.warn({ limits: kept, flags, file }, 'bandwidth limits set with meshctl limit are kept over the flags');
  return new Bandwidth(kept ?? flags);
}

/**
 * The configuration's limits, at a reload (SIGHUP): they replace those of `meshctl limit`, whose kept copy goes
 * so that a restart agrees with the file. Returns what changed.
 */
export async function applyConfiguredLimits(bandwidth: Bandwidth, dataDir: string, limits: BandwidthLimits): Promise<Partial<Record<Traffic, { from?: number; to?: number }>>> {
  const before = bandwidth.limits;
  bandwidth.set(limits);
  await rm(join(dataDir, FILE), { force: true });
  const changed: Partial<Record<Traffic, { from?: number; to?: number }>> = {};
  for (const key of TRAFFIC) if (before[key] !== limits[key]) changed[key] = { from: before[key], to: limits[key] };
  return changed;
}

export function registerLimitsApi(app: FastifyInstance, bandwidth: Bandwidth, dataDir: string, log: Logger): void {
  app.get('/_mesh/v1/limits', async () => bandwidth.limits);
  app.put('/_mesh/v1/limits', async (req) => {
    const query = req.query as Record<string, string | undefined>;
    const next = bandwidth.limits;
    for (const [key, value] of Object.entries(query)) {
      if (!TRAFFIC.includes(key as Traffic) || typeof value !== 'string') {
        throw new RegistryError(400, 'UNSUPPORTED', `unknown limit "${key}" (expected ${TRAFFIC.join(', ')})`);
      }
      try {
        next[key as Traffic] = parseLimit(value);
      } catch (err) {
        throw new RegistryError(400, 'UNSUPPORTED', `${key}: ${(err as Error).message}`);
      }
    }
    bandwidth.set(next);
    await writeAtomically(join(dataDir, FILE), JSON.stringify(next));
    log.info({ limits: next }, 'bandwidth limits changed');
    return next;
  });
}
