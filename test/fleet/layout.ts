// Names and places of a fleet run. Everything a run creates carries its run id: namespaces and links are
// named `lm-<run>-…` and every file lives in `<STATE_ROOT>/<run>/`, so cleanup can find exactly what is ours.
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where runs keep their marker (fleet.json) and all their files. */
export const STATE_ROOT = process.env.LAYERMESH_FLEET_DIR ?? '/tmp/layermesh-fleet';
export const MARKER = 'fleet.json';

/** Host addresses are <net>.1 … <net>.250, the bridge (the root namespace) is <net>.254. */
export const MAX_HOSTS = 250;
const BRIDGE_HOST = 254;
/** Fleets live in 10.231.<x>.0/24: private, and far from the 10.0.x/10.1.x ranges clouds like to use. */
const NET_PREFIX = '10.231';

export interface RunNames {
  run: string;
  dir: string;
  marker: string;
  bridge: string;
  /** Every namespace and root-side link of this run starts with this. */
  prefix: string;
  ns(i: number): string;
  /** Root-namespace end of host i's veth pair; the other end is `eth0` inside the host. */
  veth(i: number): string;
  hostDir(i: number): string;
}

/** 4 hex digits: short, because interface names are limited to 15 characters (`lm-abcd-v250` is 12). */
export function newRunId(): string {
  return randomBytes(2).toString('hex');
}

export function isRunId(s: string): boolean {
  return /^[0-9a-f]{4}$/.test(s);
}

export function runNames(run: string): RunNames {
  if (!isRunId(run)) throw new Error(`not a fleet run id: ${JSON.stringify(run)}`);
  const dir = join(STATE_ROOT, run);
  const prefix = `lm-${run}-`;
  return {
    run,
    dir,
    marker: join(dir, MARKER),
    bridge: `${prefix}br`,
    prefix,
    ns: (i) => `${prefix}h${i}`,
    veth: (i) => `${prefix}v${i}`,
    hostDir: (i) => join(dir, `h${i}`),
  };
}

export function hostAddress(subnet: number, i: number): string {
  if (!Number.isInteger(i) || i < 1 || i > MAX_HOSTS) throw new Error(`host index ${i} is outside 1..${MAX_HOSTS}`);
  return `${NET_PREFIX}.${subnet}.${i}`;
}

export function bridgeAddress(subnet: number): string {
  return `${NET_PREFIX}.${subnet}.${BRIDGE_HOST}`;
}

export function subnetCidr(subnet: number): string {
  return `${NET_PREFIX}.${subnet}.0/24`;
}

/** The repository root (the directory whose package.json is layermesh's), from src or from dist. */
export function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'layermesh') return dir;
    if (dirname(dir) === dir) throw new Error(`cannot find the layermesh repository above ${fileURLToPath(import.meta.url)}`);
  }
}

/** The built daemon and CLI: the fleet runs what `npm run build` produced, like users do. */
export function builtEntryPoints(): { meshd: string; meshctl: string } {
  const root = repoRoot();
  const meshd = join(root, 'dist/src/node/main.js');
  const meshctl = join(root, 'dist/src/cli/meshctl.js');
  for (const file of [meshd, meshctl]) {
    if (!existsSync(file)) throw new Error(`${file} does not exist: run \`npm run build\` first`);
  }
  return { meshd, meshctl };
}
