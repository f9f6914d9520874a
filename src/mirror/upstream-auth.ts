// Credentials and challenges for upstream registries: Docker's config.json format and the
// WWW-Authenticate header of the distribution token protocol.
import { readSecretFile } from '../util/secret-file.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface Challenge {
  /** Lower-cased: `bearer`, `basic`. */
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="https://auth/token",service="registry",scope="repository:a/b:pull"`; undefined when empty. */
export function parseChallenge(header: string | null | undefined): Challenge | undefined {
  const m = /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s*(.*)$/s.exec(header ?? '');
  if (!m) return undefined;
  const params: Record<string, string> = {};
  // Values are quoted strings (which may hold commas, as scopes do) or bare tokens.
  for (const p of m[2].matchAll(/([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/g)) {
    params[p[1].toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3];
  }
  return { scheme: m[1].toLowerCase(), params };
}

/** Where the same registry may be filed in a config.json: Docker Hub has several historical names. */
function aliases(registry: string): string[] {
  if (registry === 'docker.io') return ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'registry.hub.docker.com'];
  return [registry];
}

/** `https://index.docker.io/v1/` → `index.docker.io`: config.json keys are hosts or URLs. */
function hostOf(key: string): string {
  return key.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '').toLowerCase();
}

/**
 * Reads credentials from a file in Docker's config.json format: `auths.<registry>.auth` (base64 of
 * user:password) or `username`/`password` fields. Returns them by registry host as written there.
 * Credential helpers (`credsStore`) are not supported: they would run programs.
 */
export async function readDockerConfig(file: string): Promise<Map<string, Credentials>> {
  // Passwords: refused when every local user could read them, as the swarm key and the token are.
  const text = (await readSecretFile(file, 'upstream credentials')).toString('utf8');
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`reading upstream credentials ${file}: ${(err as Error).message}`, { cause: err });
  }
  return parseDockerConfig(doc, file);
}

export function parseDockerConfig(doc: unknown, file = 'config.json'): Map<string, Credentials> {
  const out = new Map<string, Credentials>();
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (auths === undefined) return out;
  if (typeof auths !== 'object' || auths === null) throw new Error(`${file}: "auths" must be an object`);
  for (const [key, entry] of Object.entries(auths as Record<string, { auth?: string; username?: string; password?: string }>)) {
    if (entry?.auth) {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw new Error(`${file}: auths.${key}.auth is not base64 of user:password`);
      out.set(hostOf(key), { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
    } else if (entry?.username !== undefined && entry.password !== undefined) {
      out.set(hostOf(key), { username: entry.username, password: entry.password });
    }
  }
  return out;
}

/** The credentials filed for a registry (`docker.io`, `ghcr.io`, `host:5000`), under any of its names. */
export function credentialsFor(all: Map<string, Credentials>, registry: string): Credentials | undefined {
  for (const name of aliases(registry.toLowerCase())) {
    const found = all.get(name);
    if (found) return found;
  }
  return undefined;
}

export function basicHeader(c: Credentials): string {
  return `Basic ${Buffer.from(`${c.username}:${c.password}`).toString('base64')}`;
}
