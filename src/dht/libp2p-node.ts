// Builds the libp2p node of a mesh member: transports, private network, Kademlia, gossip, discovery.
import { createLibp2p, type Libp2pOptions } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { memory } from '@libp2p/memory';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { identify, identifyPush, type Identify, type IdentifyPush } from '@libp2p/identify';
import { ping, type Ping } from '@libp2p/ping';
import { kadDHT, passthroughMapper, type KadDHT } from '@libp2p/kad-dht';
import { gossipsub, type GossipSub } from '@libp2p/gossipsub';
import { preSharedKey } from '@libp2p/pnet';
import { mdns } from '@libp2p/mdns';
import type { Libp2p, PrivateKey } from '@libp2p/interface';
import type { Logger } from 'pino';
import { BootstrapDialer } from './bootstrap-dialer.js';
import { ConnectionTrim } from './connection-trim.js';
import { inboundFailureLog, type InboundFailureLog } from './inbound-failures.js';
import { Liveness } from './liveness.js';
import { PathIndexedDatastore } from './indexed-datastore.js';
import { EVENTS_TOPIC, peerScoreDecay, quietTopicScoreParams } from './mesh-events.js';
import { MEMBERS_TOPIC } from './roster-messages.js';

/** Own protocol prefix: a mesh node never speaks to (or joins) the public IPFS DHT. */
export const KAD_PROTOCOL = '/layermesh/kad/1.0.0';

export interface MeshServices extends Record<string, unknown> {
  identify: Identify;
  identifyPush: IdentifyPush;
  ping: Ping;
  dht: KadDHT;
  pubsub: GossipSub;
}

export type MeshLibp2p = Libp2p<MeshServices>;

export interface MeshNodeOptions {
  privateKey: PrivateKey;
  /** Multiaddrs to listen on: tcp (`/ip4/0.0.0.0/tcp/4001`) or, for in-process simulations, `/memory/<name>`. */
  listen: string[];
  /** Multiaddrs of peers to stay connected to (with or without `/p2p/<id>`). */
  bootstrap: string[];
  /** Discover peers on the local network by multicast DNS. */
  mdns: boolean;
  /** Swarm key file contents (see swarm-key.ts): only holders of the same key can connect. */
  swarmKey?: Uint8Array;
  logger: Logger;
  /** How long provider records stay valid on the peers that store them. */
  recordTtlMs: number;
  /** Bootstrap reconnect check interval (and first retry delay); default 2 s, doubling up to 30 s, jittered. */
  bootstrapIntervalMs?: number;
  /** Connections kept open at most; default MAX_CONNECTIONS. */
  maxConnections?: number;
}

export interface MeshNode {
  libp2p: MeshLibp2p;
  recordTtlMs: number;
  /** Connections kept at most (MAX_CONNECTIONS unless given). */
  maxConnections: number;
  stop(): Promise<void>;
}

/**
 * Connections kept at most (connection-trim.ts). kad-dht keeps every connection it ever made, so without a cap
 * a fleet goes all to all: each connection a ping every 10 s, each join a handshake with every member. A fleet
 * this size or smaller stays fully connected; a larger one knows its members from the roster (roster.ts).
 */
export const MAX_CONNECTIONS = 64;

/** A peer gone is dropped within 27.5 s of its last word, 25 s on an idle connection (liveness.ts); fleet fault tests wait 45 s. */
export const LIVENESS = { intervalMs: 10_000, timeoutMs: 10_000 };

/**
 * gossipsub's heartbeat: mesh upkeep (GRAFT/PRUNE), gossip of recent message ids to peers outside the mesh, scores
 * recomputed. At its default, every second, it wakes an idle node each second for nothing. Publishing does
 * not wait for it (a publisher sends to every connected subscriber); a member that missed a push while away asks
 * for it when it connects again (node/catch-up.ts); a new peer joins the topic's mesh within one heartbeat.
 */
export const GOSSIP_HEARTBEAT_MS = 5_000;

/** How often kad-dht looks whether the peers closest to this node changed, to tag them keep-alive (its default 5 s). */
const CLOSE_TAGGING_MS = 60_000;

/**
 * kad-dht 16 looks for its closest peers every 5 s, a wake of an idle node for a set that changes only when a
 * peer joins or leaves; its routing table takes the period, but kad-dht does not pass it on, so it is set
 * there before the node starts. A later kad-dht that moved it is left as it is, with a warning.
 */
function slowCloseTagging(dht: unknown, ms: number, log: Logger): void {
  const tagger = (dht as { routingTable?: { closestPeerTagger?: { refreshInterval?: unknown } } }).routingTable?.closestPeerTagger;
  if (typeof tagger?.refreshInterval !== 'number') {
    log.warn('kad-dht has no close-peer tagger where expected: it tags its closest peers at its own pace');
    return;
  }
  tagger.refreshInterval = ms;
}

export async function createMeshNode(opts: MeshNodeOptions): Promise<MeshNode> {
  const log = opts.logger;
  const inbound = inboundFailureLog(log.child({ component: 'p2p.inbound' }), { swarmKey: opts.swarmKey !== undefined });
  const cannotStart = (err: unknown): never => {
    throw new Error(`cannot start libp2p on ${opts.listen.join(', ')}`, { cause: err });
  };
  const libp2p = await createLibp2p<MeshServices>({ ...libp2pOptions(opts, inbound), start: false }).catch(cannotStart);
  slowCloseTagging(libp2p.services.dht, CLOSE_TAGGING_MS, log);
  try {
    await libp2p.start();
  } catch (err) {
    cannotStart(err);
  }

  if (opts.mdns) {
    libp2p.addEventListener('peer:discovery', (evt) => {
      libp2p.dial(evt.detail.id).catch((err: Error) => {
        log.debug({ peer: evt.detail.id.toString(), err: err.message }, 'cannot dial mDNS-discovered peer');
      });
    });
  }

  const dialer = new BootstrapDialer(libp2p, opts.bootstrap, log.child({ component: 'p2p.bootstrap' }), {
    intervalMs: opts.bootstrapIntervalMs ?? 2_000,
    maxDelayMs: 30_000,
    keep: 2, // one can go away; once joined, the DHT connects the node to the rest
    enough: 8,
    dialTimeoutMs: 20_000,
  });
  dialer.start();
  const maxConnections = opts.maxConnections ?? MAX_CONNECTIONS;
  const trim = new ConnectionTrim(libp2p, log.child({ component: 'p2p.trim' }), maxConnections);
  trim.start();
  const liveness = new Liveness(libp2p, log.child({ component: 'p2p.liveness' }), LIVENESS);
  liveness.start();
  log.info({ peerId: libp2p.peerId.toString(), addrs: libp2p.getMultiaddrs().map(String) }, 'libp2p node started');

  return {
    libp2p,
    recordTtlMs: opts.recordTtlMs,
    maxConnections,
    async stop() {
      dialer.stop();
      trim.stop();
      liveness.stop();
      inbound.close();
      await libp2p.stop();
    },
  };
}

function libp2pOptions(opts: MeshNodeOptions, inbound: InboundFailureLog): Libp2pOptions<MeshServices> {
  const inMemory = opts.listen.length > 0 && opts.listen.every((a) => a.startsWith('/memory/'));
  return {
    privateKey: opts.privateKey,
    addresses: { listen: opts.listen },
    datastore: new PathIndexedDatastore(),
    transports: [inMemory ? memory() : tcp()],
    // pnet runs before Noise: a peer without the key fails the handshake, so not a single protocol message
    // (identify, DHT, gossip) reaches it. Fine for control traffic; blobs travel over HTTP (see DESIGN.md).
    connectionProtector: opts.swarmKey === undefined ? undefined : preSharedKey({ psk: opts.swarmKey }),
    connectionEncrypters: [noise()],
    // Liveness (liveness.ts) pings every connection on its muxer instead of libp2p's connection monitor (a new
    // stream per ping), and yamux's own keep-alive (every 30 s, never acted upon) would only add to it.
    streamMuxers: [yamux({ enableKeepAlive: false })],
    connectionMonitor: { enabled: false },
    connectionGater: inbound.gater, // logs inbound connections that fail their handshake; caps those under way per address
    connectionManager: {
      // Defaults (5 inbound connections per second per IP, 10 pending) refuse a fleet behind one NAT, a
      // loopback test mesh, or everyone redialing a restarted bootstrap peer at once.
      inboundConnectionThreshold: 1_000,
      maxIncomingPendingConnections: 256,
    },
    peerDiscovery: opts.mdns ? [mdns({ serviceTag: '_layermesh._udp.local' })] : [],
    services: {
      identify: identify(),
      // Tells connected peers of protocols served from later on (meshd serves its own once libp2p has started):
      // catch-up and NodeInfo are asked of a peer only once it has told it speaks them.
      identifyPush: identifyPush(),
      // kad-dht requires ping: it pings every new peer before adding it to the routing table, and drops the
      // peer if that ping fails. The default of one outbound ping stream per connection makes it fail whenever
      // the connection monitor (or anyone) pings at the same moment, leaving the routing table empty.
      ping: ping({ maxOutboundStreams: 16, maxInboundStreams: 16 }),
      dht: kadDHT({
        protocol: KAD_PROTOCOL,
        clientMode: false, // a LAN peer is dialable; client mode would never answer queries
        // Peers asked at once per lookup (default 10, over as many disjoint paths): with 60 nodes on 2 cores the
        // default made every lookup and join dial tens of peers, and late joiners never got a connection.
        alpha: 3,
        peerInfoMapper: passthroughMapper, // the default drops 127.x/10.x/192.168.x: everything on a LAN
        reprovide: {
          validity: opts.recordTtlMs, // drives expiry of records stored for others
          interval: cleanupInterval(opts.recordTtlMs), // how often expired records are dropped
          // Our own records are republished in batches by the router (every TTL/3). kad-dht cannot be told
          // not to re-provide them itself; with threshold 0 it only does so for a record already expired,
          // i.e. after this process was paused for over 2/3 of the TTL (a suspended VM), and then one walk per key.
          threshold: 0,
        },
      }),
      pubsub: gossipsub({
        globalSignaturePolicy: 'StrictSign',
        heartbeatInterval: GOSSIP_HEARTBEAT_MS,
        allowPublishToZeroTopicPeers: true, // a lone node may publish; nobody hears it, that is all
        scoreParams: {
          ...peerScoreDecay,
          IPColocationFactorWeight: 0, // many members may share one IP (NAT, loopback); don't score them down
          topics: { [EVENTS_TOPIC]: quietTopicScoreParams, [MEMBERS_TOPIC]: quietTopicScoreParams },
        },
      }),
    },
  };
}

/** Expired records linger until the next cleanup pass: run it often relative to the TTL, at most every 10 min. */
function cleanupInterval(recordTtlMs: number): number {
  return Math.max(100, Math.min(Math.floor(recordTtlMs / 4), 600_000));
}
