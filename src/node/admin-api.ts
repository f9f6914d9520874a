// The daemon's admin API for meshctl, beside the registry on its (loopback) listener.
import type { FastifyInstance } from 'fastify';
import type { Store } from '../store/store.js';
import type { Inventory, Membership } from '../dht/membership.js';
import { isConnected, type PeerStatus, type Router } from '../dht/router.js';
import type { ImageEntry, MeshImageRow, NodeStatus, PeerEntry, WhoHasAnswer, WhoHasEntry } from '../api/admin-types.js';
import { isDigest } from '../oci/digest.js';
import { comparePushes } from '../oci/tag-push.js';
import { RegistryError } from '../registry/errors.js';
import type { Holdings } from './holdings.js';

export interface AdminDeps {
  store: Store;
  router: Pick<Router, 'id' | 'findProviders'> & { readonly lastRepublish?: Date };
  membership: Pick<Membership, 'peers' | 'inventories'>;
  holdings: Holdings;
  /** This node's inventory, as members see it. */
  ownInventory(): Promise<Inventory>;
  node: { name: string; labels: Record<string, string>; swarmKey: boolean };
  registryUrl: () => string;
  p2pAddrs: () => string[];
}

/**
 * How long one survey of the members' inventories answers the admin API: a status page polls every second, and so
 * can any local user in a loop; each survey asks every member for its whole inventory.
 */
const SURVEY_FRESH_MS = 1_000;

/** membership.inventories(), one survey at a time, reused while it runs and for SURVEY_FRESH_MS after. */
function sharedSurvey(membership: Pick<Membership, 'inventories'>): () => Promise<Map<string, Inventory>> {
  let survey: Promise<Map<string, Inventory>> | undefined;
  let freshUntil = Number.NEGATIVE_INFINITY;
  return () => {
    if (survey && performance.now() < freshUntil) return survey;
    freshUntil = Infinity;
    survey = membership.inventories().finally(() => (freshUntil = performance.now() + SURVEY_FRESH_MS));
    return survey;
  };
}

/** Nearest first: this node, then peers by measured round-trip time, unmeasured last. */
function nearestFirst(a: WhoHasEntry, b: WhoHasEntry): number {
  if (a.self !== b.self) return a.self ? -1 : 1;
  return (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity);
}

export function registerAdminApi(app: FastifyInstance, deps: AdminDeps): void {
  const { router, membership } = deps;
  const inventories = sharedSurvey(membership);

  app.get('/_mesh/v1/status', async (): Promise<NodeStatus> => ({
    id: router.id,
    name: deps.node.name,
    labels: deps.node.labels,
    registry: deps.registryUrl(),
    p2p: deps.p2pAddrs(),
    store: deps.store.kind,
    swarmKey: deps.node.swarmKey,
    peers: membership.peers().filter(isConnected).length,
    announcedKeys: deps.holdings.size,
    lastReconcile: deps.holdings.lastReconcile?.toISOString(),
    lastRepublish: router.lastRepublish?.toISOString(),
  }));

  app.get('/_mesh/v1/peers', async (): Promise<PeerEntry[]> => {
    const known = await inventories();
    return membership.peers().map((p) => ({ ...p, keys: known.get(p.id)?.keys, disk: known.get(p.id)?.disk }));
  });

  app.get('/_mesh/v1/who-has', async (req): Promise<WhoHasAnswer> => {
    const key = (req.query as { key?: string }).key;
    if (!key) throw new RegistryError(400, 'UNSUPPORTED', 'who-has needs ?key=sha256:<hex> or ?key=registry/repo:tag');
    const peers = new Map<string, PeerStatus>(membership.peers().map((p) => [p.id, p]));
    // For an image name, what each holder names it after: a push of one name to two nodes may leave them apart for a moment.
    const images = isDigest(key) ? undefined : imagesNamed(key, deps, inventories);
    images?.catch(() => undefined); // awaited after the lookup
    const found: WhoHasEntry[] = [];
    for await (const provider of router.findProviders(key, AbortSignal.timeout(5000))) {
      if (found.some((f) => f.id === provider.id)) continue;
      const peer = peers.get(provider.id);
      const self = provider.id === router.id;
      found.push({
        id: provider.id,
        name: self ? deps.node.name : peer?.info?.name,
        addrs: self ? deps.p2pAddrs() : provider.addrs.length ? provider.addrs : peer?.addrs ?? [],
        rttMs: self ? 0 : peer?.rttMs,
        self,
      });
    }
    const named = await images;
    for (const entry of found) Object.assign(entry, named?.get(entry.id));
    return { key, providers: found.sort(nearestFirst) };
  });

  app.get('/_mesh/v1/images', async (req): Promise<ImageEntry[] | MeshImageRow[]> => {
    const own = await deps.ownInventory();
    if ((req.query as { mesh?: string }).mesh === undefined) return own.images;
    // One row per image and digest: the nodes that hold it whole (this one first), and those copying it.
    const rows = new Map<string, MeshImageRow>();
    const row = (name: string, digest: string) => {
      const key = `${name}@${digest}`;
      if (!rows.has(key)) rows.set(key, { name, digest, nodes: [], fetching: [] });
      return rows.get(key)!;
    };
    const add = (id: string, inv: typeof own) => {
      for (const image of inv.images) {
        const r = row(image.name, image.digest);
        r.nodes.push({ id, name: inv.name });
        if (comparePushes(image.push, r.push) > 0) r.push = image.push;
      }
      for (const f of inv.fetching ?? []) row(f.image, f.digest).fetching.push({ id, name: inv.name, bytes: f.bytes, total: f.total });
    };
    add(router.id, own);
    for (const [id, inv] of await inventories()) add(id, inv);
    return markConflicts([...rows.values()]).sort((a, b) => a.name.localeCompare(b.name));
  });
}

/** Per node (by peer id), the digest it names `image` after and the push it follows. */
async function imagesNamed(image: string, deps: AdminDeps, inventories: () => Promise<Map<string, Inventory>>): Promise<Map<string, Pick<WhoHasEntry, 'digest' | 'push'>>> {
  const [own, others] = await Promise.all([deps.ownInventory(), inventories()]);
  const named = new Map<string, Pick<WhoHasEntry, 'digest' | 'push'>>();
  for (const [id, inv] of [[deps.router.id, own] as const, ...others]) {
    const entry = inv.images.find((i) => i.name === image);
    if (entry) named.set(id, { digest: entry.digest, ...(entry.push && { push: entry.push }) });
  }
  return named;
}

/** Names held under different digests across the mesh: the newest push's row is marked `newest`, the others `older`. */
function markConflicts(rows: MeshImageRow[]): MeshImageRow[] {
  const byName = new Map<string, MeshImageRow[]>();
  for (const r of rows) if (r.nodes.length > 0) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  for (const same of byName.values()) {
    if (same.length < 2) continue;
    const newest = same.reduce((a, b) => (comparePushes(b.push, a.push) > 0 ? b : a));
    for (const row of same) row.conflict = row === newest ? 'newest' : 'older';
  }
  return rows;
}
