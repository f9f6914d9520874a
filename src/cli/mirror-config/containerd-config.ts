// containerd's config.toml: does its CRI registry config_path include the certs.d directory, and what would
// make it so. A check, not a change: it never writes, and never fails: a config it cannot read or parse is a
// state of its result (see errors.ts).
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parse, type TomlTable } from 'smol-toml';
import { MirrorFsError } from './errors.js';

export const DEFAULT_CONTAINERD_CONFIG = '/etc/containerd/config.toml';

export interface ContainerdCheck {
  config: string;
  /** set: config_path includes the directory; other: it names other directories only; missing: no config file. */
  state: 'set' | 'unset' | 'other' | 'missing' | 'unreadable' | 'invalid';
  version?: number;
  /** the TOML table that holds config_path for this config version */
  table: string;
  configPath?: string;
  /** the CRI plugin is in disabled_plugins: config_path has no effect (ctr takes --hosts-dir instead) */
  criDisabled: boolean;
  /** settings containerd refuses next to config_path; they must go */
  conflicts: string[];
  /** config files merged in through `imports`, which this check does not read */
  imports: string[];
  error?: string;
  /** the TOML to add (absent when nothing needs to change) */
  snippet?: string;
  restartNeeded: boolean;
}

const CRI_PLUGINS: Record<number, { registry: string; ids: string[] }> = {
  1: { registry: 'cri', ids: ['cri', 'io.containerd.grpc.v1.cri'] },
  2: { registry: 'io.containerd.grpc.v1.cri', ids: ['io.containerd.grpc.v1.cri', 'cri'] },
  3: { registry: 'io.containerd.cri.v1.images', ids: ['io.containerd.cri.v1.images', 'io.containerd.grpc.v1.cri'] },
};

const asTable = (v: unknown): TomlTable | undefined => (v && typeof v === 'object' && !Array.isArray(v) ? (v as TomlTable) : undefined);
const tomlKey = (k: string) => (/^[A-Za-z0-9_-]+$/.test(k) ? k : JSON.stringify(k));
const samePath = (a: string, b: string) => resolve(a) === resolve(b);
/** The registry table of a version 2 config: what a config without one gets. */
const V2_TABLE = `plugins.${tomlKey(CRI_PLUGINS[2].registry)}.registry`;

/** Checks the text of a containerd config.toml (`path` only names it in the result). */
export function inspectContainerdConfig(text: string | undefined, dir: string, path = DEFAULT_CONTAINERD_CONFIG): ContainerdCheck {
  const base = { config: path, criDisabled: false, conflicts: [], imports: [], restartNeeded: false };
  const snippetFor = (version: number, table: string, value: string, tableExists: boolean, replacing?: string) =>
    [
      ...(version === 2 && text === undefined ? ['version = 2', ''] : []),
      ...(tableExists ? [`# in the existing [${table}] table${replacing === undefined ? '' : `, in place of its config_path = ${JSON.stringify(replacing)}`}:`] : []),
      `[${table}]`,
      `  config_path = ${JSON.stringify(value)}`,
    ].join('\n');
  if (text === undefined) {
    return { ...base, state: 'missing', version: 2, table: V2_TABLE, snippet: snippetFor(2, V2_TABLE, dir, false), restartNeeded: true };
  }
  let doc: TomlTable;
  try {
    doc = parse(text);
  } catch (err) {
    return { ...base, state: 'invalid', table: V2_TABLE, error: (err as Error).message.split('\n')[0] };
  }
  const version = typeof doc.version === 'number' ? doc.version : 1; // containerd reads a config without version as 1
  const cri = CRI_PLUGINS[version] ?? CRI_PLUGINS[3];
  const table = `plugins.${tomlKey(cri.registry)}.registry`;
  const registry = asTable(asTable(asTable(doc.plugins)?.[cri.registry])?.registry);
  const disabled = Array.isArray(doc.disabled_plugins) ? doc.disabled_plugins.map(String) : [];
  const criDisabled = cri.ids.some((id) => disabled.includes(id));
  const imports = Array.isArray(doc.imports) ? doc.imports.map(String) : [];
  const conflicts: string[] = [];
  if (registry) {
    const mirrors = asTable(registry.mirrors);
    if (mirrors && Object.keys(mirrors).length > 0) conflicts.push(`${table}.mirrors`);
    for (const [host, cfg] of Object.entries(asTable(registry.configs) ?? {})) {
      if (asTable(cfg)?.tls !== undefined) conflicts.push(`${table}.configs.${tomlKey(host)}.tls`);
    }
  }
  const configPath = typeof registry?.config_path === 'string' && registry.config_path !== '' ? registry.config_path : undefined;
  const paths = configPath?.split(':').filter(Boolean) ?? [];
  const state = paths.some((p) => samePath(p, dir)) ? 'set' : configPath ? 'other' : 'unset';
  // containerd looks for a registry's directory, else `_default`, in each directory of config_path in turn: ours goes
  // last, so that registries set up in the others keep their certificates and hosts (and skip meshd).
  const wanted = state === 'other' ? [...paths, dir].join(':') : dir;
  // An empty config_path (what `containerd config default` writes) is unset to containerd, and replaced, not repeated.
  const replacing = typeof registry?.config_path === 'string' ? registry.config_path : configPath;
  const snippet = state === 'set' || criDisabled ? undefined : snippetFor(version, table, wanted, registry !== undefined, replacing);
  return { ...base, state, version, table, configPath, criDisabled, conflicts, imports, snippet, restartNeeded: snippet !== undefined };
}

/** Reads and checks the config at path; a file it cannot read is the state `unreadable`, with the reason. */
export async function checkContainerdConfig(path: string, dir: string): Promise<ContainerdCheck> {
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      return { config: path, state: 'unreadable', table: V2_TABLE, criDisabled: false, conflicts: [], imports: [],
        error: new MirrorFsError('read', path, err).message, restartNeeded: false };
    }
  }
  return inspectContainerdConfig(text, dir, path);
}
