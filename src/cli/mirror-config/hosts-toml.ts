// What a hosts.toml written by `meshctl mirror configure` says: the registry names and mirror URL it accepts,
// and the file's content. Every hosts.toml written here starts with MARKER; files without it belong to someone
// else. Pure: no file access.
import { stringify, type TomlTable } from 'smol-toml';
import { MirrorUsageError } from './errors.js';

export const DEFAULT_CERTS_DIR = '/etc/containerd/certs.d';
export const DEFAULT_MIRROR_URL = 'http://127.0.0.1:5000';
/** containerd's fallback directory: used for every registry that has no directory of its own. */
export const DEFAULT_REGISTRY = '_default';
export const HOSTS_FILE = 'hosts.toml';
export const BACKUP_SUFFIX = '.layermesh-backup';
/** First line of every hosts.toml we write: how configure and restore tell ours from anyone else's. */
export const MARKER = '# LayerMesh: written by `meshctl mirror configure`; `meshctl mirror restore` removes it.';
const DOCKER_HUB_UPSTREAM = 'https://registry-1.docker.io';
const CAPABILITIES = ['pull', 'resolve'];

/** `_default`, or a registry host as containerd names it: `docker.io`, `ghcr.io`, `registry.local:5000`, `[::1]:5000`. */
export function validateRegistry(name: string): string {
  if (name === DEFAULT_REGISTRY) return name;
  if (name === 'index.docker.io' || name === 'registry-1.docker.io') {
    throw new MirrorUsageError(`containerd names Docker Hub "docker.io": use --registry docker.io instead of ${name}`);
  }
  if (!/^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/.test(name)) {
    throw new MirrorUsageError(`not a registry host: ${JSON.stringify(name)} (expected for example docker.io, ghcr.io or registry.local:5000)`);
  }
  return name;
}

/** The registry a directory of certs.d stands for: containerd looks for `host:port` under `host_port_` first. */
export function registryOfDir(name: string): string {
  const m = /^(.+)_(\d{1,5})_$/.exec(name);
  return m ? `${m[1]}:${m[2]}` : name;
}

/**
 * Where containerd goes when meshd does not have it: undefined for `_default` and for a registry on loopback (the
 * registry itself: containerd then tries plain HTTP too, as it does for such a registry without a hosts.toml).
 */
export function upstreamOf(registry: string): string | undefined {
  if (registry === DEFAULT_REGISTRY || /^(?:localhost|127(?:\.\d+){3}|\[::1\])(?::\d+)?$/.test(registry)) return undefined;
  return registry === 'docker.io' ? DOCKER_HUB_UPSTREAM : `https://${registry}`;
}

/** The meshd URL as containerd and dockerd want it: scheme, host and port, no path. */
export function normalizeMirrorUrl(raw: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new MirrorUsageError(`--mirror-url: not a URL: ${raw}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new MirrorUsageError(`--mirror-url: must be http:// or https://, got ${raw}`);
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new MirrorUsageError(`--mirror-url: give only scheme, host and port (meshd serves /v2/ at its root), got ${raw}`);
  }
  return url.origin;
}

/** A registry directory's certificates, by absolute path: CAs, and client certificates with their keys. */
export interface RegistryCertificates {
  ca: string[];
  client: [cert: string, key: string][];
}

export function isOurs(content: Buffer | string): boolean {
  const text = typeof content === 'string' ? content : content.subarray(0, MARKER.length + 2).toString('utf8');
  return text.startsWith(MARKER);
}

/**
 * Our hosts.toml for one registry: meshd first, then the upstream. When the registry had a hosts.toml of its own
 * (`previous`), its settings and hosts are kept after meshd, so the fallback stays what it was (its own server, CA,
 * mirrors); otherwise the upstream is `server` (none for `_default`: containerd then uses the registry itself).
 */
export function renderHostsToml(registry: string, mirrorUrl: string, previous?: TomlTable, certs?: RegistryCertificates): string {
  const upstream = upstreamOf(registry);
  const meshd = { capabilities: CAPABILITIES };
  if (!previous) {
    return [
      MARKER,
      `# containerd asks meshd first, then ${upstream ?? 'the registry itself'}.`,
      ...(upstream ? [`server = ${JSON.stringify(upstream)}`] : []),
      // containerd reads the directory's certificates only while it has no hosts.toml: named here, they still count.
      ...(certs?.ca.length ? [`ca = ${JSON.stringify(certs.ca)}`] : []),
      ...(certs?.client.length ? [`client = ${JSON.stringify(certs.client)}`] : []),
      '',
      `[host.${JSON.stringify(mirrorUrl)}]`,
      `  capabilities = ${JSON.stringify(CAPABILITIES).replace(',', ', ')}`,
      '',
    ].join('\n');
  }
  const { host: prevHosts, ...settings } = previous;
  const hosts: TomlTable = { [mirrorUrl]: meshd };
  if (prevHosts && typeof prevHosts === 'object' && !Array.isArray(prevHosts)) {
    for (const [url, h] of Object.entries(prevHosts as TomlTable)) if (url.replace(/\/+$/, '') !== mirrorUrl) hosts[url] = h;
  }
  const doc: TomlTable = { ...(settings.server === undefined && upstream ? { server: upstream } : {}), ...settings, host: hosts };
  return [
    MARKER,
    `# containerd asks meshd first, then the hosts and server of the previous ${HOSTS_FILE} (kept as ${HOSTS_FILE}${BACKUP_SUFFIX}).`,
    stringify(doc).trim(),
    '',
  ].join('\n');
}
