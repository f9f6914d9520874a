// What this node knows about its connected peers: addresses, round-trip time, and the NodeInfo each peer
// tells about itself over /layermesh/info/1.0.0 (the responder writes its NodeInfo as JSON and closes).
import type { Connection, IdentifyResult, PeerId } from '@libp2p/interface';
import type { Logger } from 'pino';
import { askJson, serveJson } from './json-protocol.js';
import type { MeshLibp2p } from './libp2p-node.js';
import type { NodeInfo, PeerStatus } from './router.js';

export const INFO_PROTOCOL = '/layermesh/info/1.0.0';
const MAX_INFO_BYTES = 64 * 1024;
const INFO_TIMEOUT_MS = 5_000;
/** libp2p's identify gives up after 5 s: a connection older than this that is not identified will not be by itself. */
const IDENTIFIED_WITHIN_MS = 6_000;

interface Entry {
  addrs: string[];
  rttMs?: number;
  info?: NodeInfo;
  /** It told (identify) that it serves INFO_PROTOCOL. */
  speaksInfo?: boolean;
  /** Its NodeInfo is being asked for. */
  asking?: boolean;
}

export class PeerDirectory {
  private readonly entries = new Map<string, Entry>();
  private readonly identifying = new WeakSet<Connection>();
  private readonly onIdentify = (evt: CustomEvent<IdentifyResult>): void => this.identified(evt.detail);
  private readonly onDisconnect = (evt: CustomEvent<PeerId>): void => void this.entries.delete(evt.detail.toString());

  constructor(
    private readonly libp2p: MeshLibp2p,
    private readonly nodeInfo: NodeInfo,
    private readonly log: Logger,
    /** Told of each peer's info once it is known (the roster keeps it beyond the connection). */
    private readonly onInfo: (peer: string, info: NodeInfo, addrs: string[]) => void,
  ) {}

  async start(): Promise<void> {
    await serveJson(this.libp2p, INFO_PROTOCOL, () => this.nodeInfo);
    this.libp2p.addEventListener('peer:identify', this.onIdentify);
    this.libp2p.addEventListener('peer:disconnect', this.onDisconnect);
  }

  stop(): void {
    this.libp2p.removeEventListener('peer:identify', this.onIdentify);
    this.libp2p.removeEventListener('peer:disconnect', this.onDisconnect);
  }

  peers(): PeerStatus[] {
    return this.libp2p.getPeers().map((id) => {
      const key = id.toString();
      const entry = this.entries.get(key);
      const conns = this.libp2p.getConnections(id);
      // Liveness (liveness.ts) measures rtt every 10 s; until then, the ping made on connect.
      const rttMs = conns.find((c) => c.rtt !== undefined)?.rtt ?? entry?.rttMs;
      const addrs = entry?.addrs.length ? entry.addrs : conns.map((c) => c.remoteAddr.toString());
      return { id: key, addrs, ...(rttMs !== undefined && { rttMs }), ...(entry?.info && { info: entry.info }) };
    });
  }

  /**
   * Asks again what the first requests on a peer's connection did not get (a busy host's timeouts): identify, without
   * which no part of libp2p uses the connection, and the NodeInfo. Until then the peer is no member here, though its
   * connection may last for days.
   */
  askAgain(): void {
    for (const peer of this.libp2p.getPeers()) {
      const entry = this.entries.get(peer.toString());
      if (entry === undefined) void this.identify(peer);
      else if (entry.speaksInfo && entry.info === undefined) void this.fetch(peer, entry);
    }
  }

  // Never rejects: identified, the peer gets its entry (onIdentify).
  private async identify(peer: PeerId): Promise<void> {
    const conn = this.libp2p.getConnections(peer).find((c) => c.status === 'open' && Date.now() - c.timeline.open > IDENTIFIED_WITHIN_MS);
    if (conn === undefined || this.identifying.has(conn)) return;
    this.identifying.add(conn);
    try {
      await this.libp2p.services.identify.identify(conn);
    } catch (err) {
      this.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'cannot identify a connected peer');
    } finally {
      this.identifying.delete(conn);
    }
  }

  private identified(result: IdentifyResult): void {
    const key = result.peerId.toString();
    let entry = this.entries.get(key);
    if (entry === undefined) this.entries.set(key, (entry = { addrs: [] }));
    entry.addrs = result.listenAddrs.map(String);
    entry.speaksInfo = result.protocols.includes(INFO_PROTOCOL);
    if (entry.speaksInfo && entry.info === undefined) void this.fetch(result.peerId, entry);
  }

  // Never rejects: a peer that does not answer simply has no info (and is asked again: askAgain).
  private async fetch(peer: PeerId, entry: Entry): Promise<void> {
    if (entry.asking) return;
    entry.asking = true;
    const signal = AbortSignal.timeout(INFO_TIMEOUT_MS);
    try {
      entry.rttMs = await this.libp2p.services.ping.ping(peer, { signal });
      entry.info = parseNodeInfo(await askJson(this.libp2p, peer, INFO_PROTOCOL, { signal, maxBytes: MAX_INFO_BYTES }));
      this.onInfo(peer.toString(), entry.info, entry.addrs);
      this.log.debug({ peer: peer.toString(), info: entry.info, rttMs: entry.rttMs }, 'peer info');
    } catch (err) {
      this.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'cannot fetch peer info');
    } finally {
      entry.asking = false;
    }
  }
}

export function parseNodeInfo(value: unknown): NodeInfo {
  const v = value as Partial<NodeInfo> | null;
  const labels = v?.labels;
  if (
    typeof v?.name !== 'string' ||
    typeof labels !== 'object' || labels === null || Array.isArray(labels) ||
    !Object.values(labels).every((l) => typeof l === 'string') ||
    !Number.isInteger(v.dataPlanePort) || v.dataPlanePort! < 0 || v.dataPlanePort! > 65535 ||
    (v.replicate !== undefined && typeof v.replicate !== 'string')
  ) {
    throw new Error('peer info is not a NodeInfo {name, labels, dataPlanePort, replicate?}');
  }
  const info: NodeInfo = { name: v.name, labels: { ...labels }, dataPlanePort: v.dataPlanePort! };
  if (v.replicate !== undefined) info.replicate = v.replicate;
  return info;
}
