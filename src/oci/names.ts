// Repository names on the wire and image names in the store.
//   /v2/app/...              -> docker.io/library/app:<tag>   (what docker and ctr call `app`)
//   /v2/org/app/...          -> docker.io/org/app:<tag>
//   /v2/ghcr.io/org/app/...  -> ghcr.io/org/app:<tag>          (first component names a registry)
//   /v2/org/app/...?ns=ghcr.io -> ghcr.io/org/app:<tag>         (containerd asking a mirror)
// A manifest pushed by digest only is kept as `<repo>@sha256:<hex>` so that containerd's GC keeps it.
import { isDigest } from './digest.js';

/** A repository name or tag the spec does not allow. */
export class NameInvalidError extends Error {
  constructor(readonly kind: 'repository' | 'tag', readonly value: string) {
    super(`invalid ${kind === 'tag' ? 'tag' : 'repository name'}: ${value.length > 80 ? `${value.slice(0, 80)}…` : value}`);
    this.name = 'NameInvalidError';
  }
}

const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const REPOSITORY = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const REGISTRY_HOST = /^(?:localhost|[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
const TAG = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
const MAX_NAME = 255;
export const DEFAULT_REGISTRY = 'docker.io';

export function isTag(reference: string): boolean {
  return TAG.test(reference);
}

/** The store's name for a repository: `docker.io/library/app`. Throws NameInvalidError. */
export function repositoryKey(name: string, ns?: string): string {
  if (name.length > MAX_NAME) throw new NameInvalidError('repository', name);
  const [first, ...rest] = name.split('/');
  const explicitHost = rest.length > 0 && readsAsHost(first);
  const registry = explicitHost ? first : ns || DEFAULT_REGISTRY;
  const path = explicitHost ? rest.join('/') : name;
  if (!REPOSITORY.test(path) || !REGISTRY_HOST.test(registry)) throw new NameInvalidError('repository', name);
  const qualified = registry === DEFAULT_REGISTRY && !path.includes('/') ? `library/${path}` : path;
  return `${registry}/${qualified}`;
}

export function tagImageName(repo: string, tag: string): string {
  if (!isTag(tag)) throw new NameInvalidError('tag', tag);
  return `${repo}:${tag}`;
}

export function digestImageName(repo: string, digest: string): string {
  return `${repo}@${digest}`;
}

/** Splits a store image name into repository key and tag or digest. */
export function parseImageName(name: string): { repo: string; tag?: string; digest?: string } {
  const at = name.indexOf('@');
  if (at >= 0) return { repo: name.slice(0, at), digest: name.slice(at + 1) };
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) return { repo: name.slice(0, colon), tag: name.slice(colon + 1) };
  return { repo: name };
}

/** Whether `name` is an image name as this registry stores it: a repository key and a tag or a digest. */
export function isImageName(name: string): boolean {
  const { repo, tag, digest } = parseImageName(name);
  return isRepositoryKey(repo) && (tag !== undefined ? isTag(tag) : digest !== undefined && isDigest(digest));
}

/** Whether a store record's repository is one this registry names (containerd keeps others: `sha256:<id>` on Kubernetes nodes). */
export function isRepositoryKey(repo: string): boolean {
  try {
    return repositoryKey(wireName(repo)) === repo;
  } catch (err) {
    if (err instanceof NameInvalidError) return false;
    throw err;
  }
}

/** The name a client uses for a repository key when talking to this registry. */
export function wireName(repo: string): string {
  const slash = repo.indexOf('/');
  const registry = repo.slice(0, slash);
  const path = repo.slice(slash + 1);
  // A Docker Hub path whose first part reads as a registry (`docker.io/my.team/app`) keeps its registry.
  if (registry !== DEFAULT_REGISTRY || readsAsHost(path.split('/')[0])) return repo;
  return path.startsWith('library/') && path.split('/').length === 2 ? path.slice('library/'.length) : path;
}

/** Whether the first part of a name names a registry, as docker reads it. */
function readsAsHost(first: string): boolean {
  return first.includes('.') || first.includes(':') || first === 'localhost';
}
