// meshd's lifecycle: open the store, serve the peer data plane, join the mesh, serve the registry; stop cleanly.
import { createServer as createNetServer } from 'node:net';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import { loadOrCreateIdentity } from '../dht/identity.js';
import { dataPlaneUrl } from '../dht/membership.js';
import type { Store } from '../store/store.js';
import { Mirror } from '../mirror/mirror.js';
import { mirrorStore } from '../mirror/mirror-store.js';
import { peerKey } from '../mirror/peer-auth.js';
import { PeerClient } from '../mirror/peer-client.js';
import { createPeerServer } from '../mirror/peer-server.js';
import { peerTls } from '../mirror/peer-tls.js';
import { Spools } from '../mirror/spools.js';
import { Upstream } from '../mirror/upstream.js';
import { Access } from '../registry/access.js';
import type { PushListener } from '../registry/context.js';
import { createRegistry } from '../registry/server.js';
import { UploadSessions } from '../registry/upload-sessions.js';
import { registerAdminApi } from './admin-api.js';
import { EventLog } from './event-log.js';
import { registerStatusPage } from './status-page.js';
import { countEviction, registerMetrics } from './metrics.js';
import { openBandwidth, registerLimitsApi } from './limits.js';
import type { Bandwidth } from '../mirror/bandwidth.js';
import type { Config } from './config.js';
import { splitHostPort } from './config-values.js';
import { joinMesh, type Mesh } from './mesh.js';
import { readConfiguredFiles } from './configured-files.js';
import { openStore } from './open-store.js';
import { pushGossip } from './push-event.js';
import { NewestPushes } from './newest-pushes.js';
import { PushFollower } from './push-follower.js';
import { catchUpOnJoin } from './catch-up.js';
import { RetryTimers } from './retries.js';
import { Replicator } from './replicator.js';
import { startDisk } from './disk.js';
import { registerDiskApi } from './disk-api.js';
import { trackingUse } from './use-log.js';
import { TagRecords } from './tag-records.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import { removeLeftovers } from '../util/atomic-file.js';

/** A peer that sends no byte for this long is left for the next holder. */
const PEER_STALL_MS = 10_000;

export interface Daemon {
  store: Store;
  mesh: Mesh;
  registryUrl: string;
  /** The bandwidth limits in force (a reload changes them). */
  bandwidth: Bandwidth;
  stop(): Promise<void>;
}

type Server = { listen(o: { host: string; port: number }): Promise<string>; server: import('node:net').Server };

const cannotListen = (what: string, addr: string, err: unknown) => new Error(`${what} cannot listen on ${addr}: ${(err as Error).message}`, { cause: err });

/**
 * Listens and returns the bound host (bracketed when v6) and port (port 0 picks a free port). Past `maxConnections` open connections new
 * ones are refused, so that no client can use up the descriptors meshd needs for its store and its peers.
 */
async function listen(app: Server, addr: string, what: string, maxConnections: number): Promise<{ host: string; port: number }> {
  const { host, port } = splitHostPort(addr);
  app.server.maxConnections = maxConnections;
  try {
    await app.listen({ host, port });
  } catch (err) {
    throw cannotListen(what, addr, err);
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  return { host: host.includes(':') ? `[${host}]` : host, port: bound };
}

/**
 * Fails now when another process holds `addr`: the registry listens only once the node has joined the mesh (its
 * routes need the mesh), and found there, a taken port made the node join and leave at each of systemd's restarts.
 */
async function checkFree(addr: string, what: string): Promise<void> {
  const { host, port } = splitHostPort(addr);
  if (port === 0) return;
  const probe = createNetServer((socket) => socket.destroy()); // a client that comes meanwhile must not hold its close
  try {
    await new Promise<void>((resolve, reject) => probe.once('error', reject).listen({ host, port, exclusive: true }, resolve));
  } catch (err) {
    throw cannotListen(what, addr, err);
  }
  await new Promise((resolve) => probe.close(resolve));
}

/** A push listener that also notes each push in the event log. */
function recorded(pushes: PushListener, events: EventLog, node: string): PushListener {
  return {
    check: pushes.check,
    labels: pushes.labels,
    pushed: (image, digest, o, labels) => (events.record({ kind: 'pushed', image, digest, node }), pushes.pushed(image, digest, o, labels)),
  };
}

export async function startDaemon(config: Config, log: Logger): Promise<Daemon> {
  const { token, swarmKey, upstreamCredentials } = await readConfiguredFiles(config);
  // What has started, stopped in reverse order at shutdown or when a later step fails.
  const closers: (() => Promise<void>)[] = [];
  // One grace for every listener, from the moment the stop begins: the unit's TimeoutStopSec bounds the whole stop.
  let cutAt = Infinity;
  const closeAll = async () => {
    for (const close of closers.reverse()) await close();
  };
  try {
    await mkdir(config.dataDir, { recursive: true });
    await removeLeftovers(config.dataDir); // the state files' writes a crash cut off
    const membershipKey = peerKey(swarmKey);
    const upstream = config.upstream
      ? new Upstream({
          endpoints: config.upstreamEndpoints,
          credentials: upstreamCredentials,
          timeoutMs: config.upstreamTimeoutMs,
          log: log.child({ component: 'upstream' }),
        })
      : undefined;
    const store = await openStore(config, log);
    closers.push(() => store.close());

    const privateKey = await loadOrCreateIdentity(config.dataDir);
    const spools = await Spools.open(join(config.dataDir, 'spool'), config.maxUploadSize);
    // The data plane's certificate carries the identity key: members reach this node's peer id, not an address.
    const tls = config.peerPlaintext ? undefined : await peerTls(privateKey);
    if (!tls) {
      log.warn({ peerAddr: config.peerAddr }, 'peer data plane is NOT encrypted (--peer-plaintext): blob bytes and image names cross the '
        + 'network in clear and members are not authenticated by their key; every member must run with --peer-plaintext too');
    }
    const bandwidth = await openBandwidth(config.dataDir, config.limits, log.child({ component: 'bandwidth' }));
    const peerServer = createPeerServer({ store, spools, membershipKey, tls, bandwidth, selfId: peerIdFromPrivateKey(privateKey).toString(), log: log.child({ component: 'peer-server' }) });
    const peer = await listen(peerServer, config.peerAddr, 'peer data plane', config.maxConnections);
    closers.push(() => closeBy(peerServer, cutAt));

    await checkFree(config.registryAddr, 'registry');
    const mesh = await joinMesh(config, store, log, { swarmKey, privateKey, dataPlanePort: peer.port });
    closers.push(() => mesh.stop());

    const mirror = new Mirror({
      store,
      spools,
      peers: new PeerClient(membershipKey, tls),
      bandwidth,
      log: log.child({ component: 'mirror' }),
      lookupTimeoutMs: config.mirrorTimeoutMs,
      stallTimeoutMs: PEER_STALL_MS,
      resolveTags: config.mirrorTags,
      members: mesh.membership,
      partialHolder: (digest) => mesh.holdings.announceArriving(digest),
      upstream,
    });
    // The newest push of each name known here: stamps in the image records, then gossip.
    const pushes = new NewestPushes(mesh.router.id);
    await pushes.persist(join(config.dataDir, 'pushes.json'), log);
    await pushes.load(store);
    closers.push(() => pushes.save());
    const events = new EventLog();
    const replicator = new Replicator({
      store,
      records: new TagRecords(store, pushes, log.child({ component: 'tags' })),
      membership: mesh.membership,
      mirror,
      log: log.child({ component: 'replicator' }),
      ended: (image, digest, outcome) =>
        events.record({ kind: outcome === 'failed' ? 'replication-failed' : outcome, image, digest, node: config.nodeName }),
    });
    const follower = new PushFollower({
      store,
      pushes,
      replicator,
      membership: mesh.membership,
      policy: config.replicate,
      self: { name: config.nodeName, labels: config.labels },
      log: log.child({ component: 'replicator' }),
    });
    closers.push(async () => follower.stop());
    const nameOf = (id: string) => (id === mesh.router.id ? config.nodeName : mesh.router.peers().find((p) => p.id === id)?.info?.name ?? id);
    const disk = await startDisk(config, {
      store, router: mesh.router, holdings: mesh.holdings, events, pushes, nameOf, log, onEvicted: countEviction,
      inFlight: () => new Set([...replicator.inFlight(), ...mirror.arriving().keys()]),
    });
    closers.push(() => disk.close());
    // Each listing of the store forgets the last use of what left it, however it left (with or without watermarks).
    mesh.holdings.onListed((held) => disk.uses.retain(held));
    mesh.router.onEvent((event) => {
      if (event.type === 'image-removed') {
        follower.forget(event.image);
        return disk.onRemoval(event);
      }
      events.record({ kind: 'pushed', image: event.image, digest: event.digest, node: nameOf(event.node) });
      follower.onEvent(event);
    });
    // Members see the replicator's progress in this node's inventory.
    await mesh.serveInventory(() => replicator.progress(), () => disk.totals.get());
    const catchUpRetries = new RetryTimers();
    closers.push(async () => catchUpRetries.stop());
    catchUpOnJoin(mesh.membership, pushes, (event) => follower.onEvent(event), log.child({ component: 'replicator' }), catchUpRetries);
    follower.resumeUnfinished();
    const uploads = new UploadSessions(store, {
      maxBlobBytes: config.maxUploadSize, idleTimeoutMs: config.uploadTimeoutMs,
      maxSessions: config.maxUploads, maxSessionsPerClient: config.maxUploadsPerClient,
    }, log.child({ component: 'uploads' }));
    // Uploads not finished when the registry has closed are aborted: nothing partial survives the daemon.
    closers.push(() => uploads.close());
    const registry = createRegistry({
      // The registry reads through the mirror: what this host lacks comes from the mesh (and the upstream).
      // Reads through the use log: eviction takes the least recently used first.
      store: trackingUse(mirrorStore(store, mirror, { registries: config.mirrorRegistries }), disk.uses),
      uploads,
      log: log.child({ component: 'registry' }),
      maxManifestBytes: MAX_MANIFEST_BYTES,
      access: new Access({ token, allow: config.registryAllow, writeGroup: config.writeGroup, log: log.child({ component: 'access' }) }),
      pushes: recorded(pushGossip(store, mesh.router, pushes, follower.takersOf, log), events, config.nodeName),
    });
    registerStatusPage(registry, events);
    registerMetrics(registry, { router: mesh.router, holdings: mesh.holdings, disk: () => disk.totals.get() });
    registerLimitsApi(registry, bandwidth, config.dataDir, log.child({ component: 'bandwidth' }));
    registerDiskApi(registry, { evictor: disk.evictor, totals: disk.totals, router: mesh.router, log, forget: (image) => follower.forget(image) });
    let registryUrl = '';
    registerAdminApi(registry, {
      store,
      router: mesh.router,
      membership: mesh.membership,
      holdings: mesh.holdings,
      ownInventory: () => mesh.ownInventory(),
      node: { name: config.nodeName, labels: config.labels, swarmKey: swarmKey !== undefined },
      registryUrl: () => registryUrl,
      p2pAddrs: mesh.addrs,
    });
    const bound = await listen(registry, config.registryAddr, 'registry', config.maxConnections);
    registryUrl = `http://${bound.host}:${bound.port}`;
    closers.push(() => closeBy(registry, cutAt));
    log.info({ registry: registryUrl, peer: dataPlaneUrl(peer.host, peer.port, config.peerPlaintext), store: store.kind, peerId: mesh.router.id, p2p: mesh.addrs() }, 'meshd ready');

    let stopping: Promise<void> | undefined;
    const stop = () =>
      (stopping ??= (async () => {
        log.info('meshd stopping');
        cutAt = Date.now() + config.shutdownGraceMs;
        await closeAll();
        log.info('meshd stopped');
      })());
    return { store, mesh, registryUrl, bandwidth, stop };
  } catch (err) {
    cutAt = Date.now(); // nothing to finish: the daemon never served
    await closeAll();
    throw err;
  }
}

/** Stops a listener: requests in flight go on until `cutAt`, then their connections are cut (a slow member's download too). */
async function closeBy(app: { server: { closeAllConnections(): void }; close(): Promise<unknown> }, cutAt: number): Promise<void> {
  const cut = setTimeout(() => app.server.closeAllConnections(), Math.max(0, cutAt - Date.now()));
  await app.close();
  clearTimeout(cut);
}
