// The user's words: image references, `[USER@]HOST[:PORT]`, platforms, registry addresses.
import { isDigest } from '../../oci/digest.js';
import { isTag, NameInvalidError, repositoryKey, wireName } from '../../oci/names.js';
import { PusshError } from './errors.js';

export interface ImageRef {
  /** As the user wrote it. */
  given: string;
  /** The store's repository key, as containerd names it: `docker.io/library/app`. */
  repo: string;
  tag?: string;
  digest?: string;
  /** The repository name on the wire, as meshd's registry expects it: `app`, `org/app`, `ghcr.io/org/app`. */
  remoteName: string;
}


/** `app`, `app:1`, `org/app@sha256:…`, `ghcr.io/org/app:1`; a bare name means `:latest`, as docker says. */
export function parseImageRef(given: string): ImageRef {
  let name = given;
  let digest: string | undefined;
  const at = name.indexOf('@');
  if (at >= 0) {
    digest = name.slice(at + 1);
    name = name.slice(0, at);
    if (!isDigest(digest)) throw new PusshError('usage', `${given}: not a sha256 digest after @`);
  }
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
  }
  if (!tag && !digest) tag = 'latest';
  let repo: string;
  try {
    repo = repositoryKey(name);
  } catch (err) {
    if (err instanceof NameInvalidError) throw new PusshError('usage', `${given}: not a valid image name`);
    throw err;
  }
  if (tag !== undefined && !isTag(tag)) throw new PusshError('usage', `${given}: not a valid tag`);
  return { given, repo, tag, digest, remoteName: wireName(repo) };
}

/** The name containerd and docker hold the image under: `docker.io/library/app:1` (or `…@sha256:…`). */
export function localName(ref: ImageRef): string {
  return ref.tag ? `${ref.repo}:${ref.tag}` : `${ref.repo}@${ref.digest}`;
}

export interface SshTarget {
  user?: string;
  host: string;
  port?: number;
  /** As the user wrote it, for messages. */
  display: string;
}

/** `[USER@]HOST[:PORT]`, `[USER@][IPV6]:PORT`, or `ssh://[USER@]HOST[:PORT]`. */
export function parseSshTarget(given: string): SshTarget {
  const bad = (why: string) => new PusshError('usage', `${given}: ${why}; expected [USER@]HOST[:PORT]`);
  let rest = given.startsWith('ssh://') ? given.slice('ssh://'.length).replace(/\/$/, '') : given;
  let user: string | undefined;
  const at = rest.lastIndexOf('@');
  if (at >= 0) {
    user = rest.slice(0, at);
    rest = rest.slice(at + 1);
    if (!user) throw bad('empty user');
  }
  let host = rest;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed) {
    host = bracketed[1];
    port = bracketed[2] === undefined ? undefined : Number(bracketed[2]);
  } else if ((rest.match(/:/g) ?? []).length === 1) {
    const [h, p] = rest.split(':');
    if (!/^\d+$/.test(p)) throw bad(`"${p}" is not a port`);
    host = h;
    port = Number(p);
  }
  // Anything starting with '-' would reach ssh as an option.
  if (!host || host.startsWith('-') || /\s/.test(host)) throw bad('not a host name');
  if (user && (user.startsWith('-') || /\s/.test(user))) throw bad('not a user name');
  if (port !== undefined && !(port > 0 && port < 65536)) throw bad('port out of range');
  return { user, host, port, display: given };
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** Names `uname -m` gives for what OCI calls amd64 and arm64. */
const ARCH_ALIASES: Record<string, string> = { x86_64: 'amd64', aarch64: 'arm64' };

export function parsePlatform(given: string): Platform {
  const parts = given.split('/');
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !p)) {
    throw new PusshError('usage', `--platform ${given}: expected os/arch[/variant], e.g. linux/arm64`);
  }
  return { os: parts[0], architecture: ARCH_ALIASES[parts[1]] ?? parts[1], variant: parts[2] };
}

export function formatPlatform(p: Partial<Platform>): string {
  return [p.os ?? '?', p.architecture ?? '?', ...(p.variant ? [p.variant] : [])].join('/');
}

/** Whether an image's platform is the one asked for; a variant only counts when asked for. */
export function platformMatches(want: Platform, have: Partial<Platform> | undefined): boolean {
  if (!have) return false;
  return have.os === want.os && have.architecture === want.architecture && (!want.variant || have.variant === want.variant);
}

/** `HOST:PORT` of the registry as seen from the remote host. */
export function parseHostPort(given: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(given);
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port > 0 && port < 65536)) throw new PusshError('usage', `${what} ${given}: expected HOST:PORT, e.g. 127.0.0.1:5000`);
  return { host: m[1] ?? m[2], port };
}
