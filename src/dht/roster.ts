// The fleet's members, beyond the peers this node is connected to. A node keeps a bounded number of
// connections (MAX_CONNECTIONS in libp2p-node.ts), yet every taker makes its replication plan from the
// whole fleet. So each member tells everyone about itself on a gossip topic, when it joins and then once a
// period while it knows members it is not connected to, and says when it leaves; a joining node asks its
// first peer for the members that peer knows. A member heard of is dialed while the node has room under its
// connection cap, so that a fleet within the cap is connected all to all. A member whose connection was lost
// (not closed on purpose) is dropped as soon as it cannot be dialed, and dialed again ever less often; a member not
// heard of for EXPIRY_PERIODS periods is dropped by everyone. A node left without connections joins again.
import { TopicValidatorResult, type Message, type SubscriptionChangeData } from '@libp2p/gossipsub';
import type { Connection, PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { isLoopback } from '@libp2p/utils';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { askJson, serveJson } from './json-protocol.js';
import type { MeshLibp2p } from './libp2p-node.js';
import { closedOnPurpose } from './connection-trim.js';
import { GoneMembers } from './gone-members.js';
import { MemberDialer } from './member-dialer.js';
import { shuffle } from '../util/shuffle.js';
import { PeerDirectory } from './peer-directory.js';
import { LEAVE, MAX_ADDRS, MEMBERS_PROTOCOL, MEMBERS_TOPIC, parseListed, parseMessage, type Announcement, type Listed } from './roster-messages.js';
import type { NodeInfo, PeerStatus } from './router.js';

const MAX_LIST_BYTES = 16 << 20;
/** Members taken from one list: a fleet's worth, not whatever a member sends. */
const MAX_LISTED = 4_096;
const LIST_TIMEOUT_MS = 10_000;
/**
 * A joining node asks a random peer for a list again, this long after its first: in a fleet starting at once the
 * first peer knows little yet (or is too busy to answer), and members announce themselves again only a period later.
 */
const LIST_AGAIN_MS = [5_000, 30_000];
/** A member not heard of (and not connected) for this many periods is taken to be gone. */
const EXPIRY_PERIODS = 4;
/** The period grows with the fleet, so that a node hears at most two announcements a second. */
const PERIOD_PER_MEMBER_MS = 500;
/** A member whose connection keeps getting lost is checked at most this often. */
const CHECK_GAP_MS = 60_000;
/** How long a stopping node waits for its leave to go out. */
const LEAVE_MS = 500;

export interface RosterOptions {
  /** Least time between two announcements of this node; default 60 s. */
  periodMs?: number;
  /** How long the dial that checks on a member whose connection ended may take; default 5 s. */
  checkTimeoutMs?: number;
  /** The node's connection cap: below it, members heard of are dialed. Default: none are. */
  maxConnections?: number;
}

interface Member extends Announcement {
  heardAt: number;
}

export class Roster {
  private readonly members = new Map<string, Member>();
  private readonly gone = new GoneMembers(EXPIRY_PERIODS);
  /** Connected peers: their addresses, round-trip times and NodeInfo. */
  private readonly directory: PeerDirectory;
  private readonly checkedAt = new Map<string, number>();
  private readonly periodMs: number;
  /**
   * Dials members heard of while this node has room under its cap. Connected, a member's loss is noticed within
   * the liveness pings (onClose); known only from announcements, only after EXPIRY_PERIODS periods.
   */
  private readonly dialer: MemberDialer;
  private announced = false;
  private listed = false;
  private timer?: NodeJS.Timeout;
  private readonly listTimers: NodeJS.Timeout[] = [];
  private readonly checksDue = new Map<string, NodeJS.Timeout>();
  private readonly shutdown = new AbortController();
  private readonly onSubscription = (evt: CustomEvent<SubscriptionChangeData>): void => {
    if (!this.announced && evt.detail.subscriptions.some((s) => s.topic === MEMBERS_TOPIC && s.subscribe)) this.announce();
  };
  private readonly onMessage = (evt: CustomEvent<Message>): void => this.heard(evt.detail);
  private readonly onClose = (evt: CustomEvent<Connection>): void => {
    const conn = evt.detail;
    if (!closedOnPurpose(conn) && this.libp2p.getConnections(conn.remotePeer).length === 0) void this.check(conn.remotePeer.toString());
    if (this.libp2p.getConnections().length === 0) this.rejoin();
  };
  private readonly onIdentify = (evt: CustomEvent<{ peerId: PeerId; protocols: string[] }>): void => {
    if (!this.listed && evt.detail.protocols.includes(MEMBERS_PROTOCOL)) void this.askList(evt.detail.peerId);
  };

  constructor(
    private readonly libp2p: MeshLibp2p,
    private readonly nodeInfo: NodeInfo,
    private readonly log: Logger,
    opts: RosterOptions = {},
  ) {
    this.directory = new PeerDirectory(libp2p, nodeInfo, log, (peer, info, addrs) => this.heardOf(peer, info, addrs));
    this.periodMs = opts.periodMs ?? 60_000;
    this.dialer = new MemberDialer(libp2p, { maxConnections: opts.maxConnections ?? 0, timeoutMs: opts.checkTimeoutMs ?? 5_000, shutdown: this.shutdown.signal, log });
  }

  async start(): Promise<void> {
    await this.directory.start();
    await serveJson(this.libp2p, MEMBERS_PROTOCOL, () => this.list());
    const pubsub = this.libp2p.services.pubsub;
    pubsub.topicValidators.set(MEMBERS_TOPIC, (_peer, msg) =>
      msg.type === 'signed' && parseMessage(msg.data) !== undefined ? TopicValidatorResult.Accept : TopicValidatorResult.Reject);
    pubsub.addEventListener('subscription-change', this.onSubscription);
    pubsub.addEventListener('message', this.onMessage);
    pubsub.subscribe(MEMBERS_TOPIC);
    this.libp2p.addEventListener('connection:close', this.onClose);
    this.libp2p.addEventListener('peer:identify', this.onIdentify);
    this.schedule();
  }

  /** Says this node leaves (briefly waiting for it to go out), and stops listening. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    clearTimeout(this.timer);
    this.listTimers.forEach(clearTimeout);
    this.checksDue.forEach(clearTimeout);
    const pubsub = this.libp2p.services.pubsub;
    if (this.announced) await Promise.race([this.publish(LEAVE), sleep(LEAVE_MS, undefined, { ref: false })]);
    pubsub.removeEventListener('subscription-change', this.onSubscription);
    pubsub.removeEventListener('message', this.onMessage);
    this.libp2p.removeEventListener('connection:close', this.onClose);
    this.libp2p.removeEventListener('peer:identify', this.onIdentify);
    this.directory.stop();
  }

  /** Connected peers as the directory knows them, then members known only from announcements and lists. */
  peers(): PeerStatus[] {
    // A connection just made has no NodeInfo yet (it is being asked for): the member's last one stands meanwhile.
    const connected = this.directory.peers().map((p) => (p.info ? p : { ...p, info: this.members.get(p.id)?.info }));
    const ids = new Set(connected.map((p) => p.id));
    const others = [...this.members].filter(([id]) => !ids.has(id)).map(([id, m]) => ({ id, addrs: m.addrs, info: m.info, connected: false as const }));
    return [...connected, ...others];
  }

  /** A member this node heard of from the member itself (its announcement, or a connection to it). */
  private heardOf(id: string, info: NodeInfo, addrs: string[]): void {
    if (!this.members.has(id)) this.log.debug({ peer: id, name: info.name }, 'member joined');
    this.gone.delete(id);
    this.members.set(id, { info, addrs, heardAt: Date.now() });
    this.dialer.connect(id, addrs);
  }

  /**
   * A node left without connections (cut off, or the last of its peers gone) has dropped, or will drop, the members
   * it cannot dial, and they it; in a fleet within the cap nobody announces, so it joins again as it first did: it
   * announces itself and asks for lists when it is connected next.
   */
  private rejoin(): void {
    this.announced = this.listed = false;
    this.listTimers.splice(0).forEach(clearTimeout);
  }

  /** The next announcement and sweep: once a period, jittered, the period growing with the fleet. */
  private schedule(): void {
    const period = Math.max(this.periodMs, this.members.size * PERIOD_PER_MEMBER_MS);
    this.timer = setTimeout(() => {
      this.sweep(period);
      // A node connected to every member it knows needs no announcement (nor do they): a fleet within the cap is quiet.
      const connected = new Set(this.libp2p.getPeers().map(String));
      if ([...this.members.keys()].some((id) => !connected.has(id))) this.announce();
      this.schedule();
    }, period * (0.9 + Math.random() * 0.2));
    this.timer.unref();
  }

  private announce(): void {
    this.announced = true;
    const addrs = this.libp2p.getMultiaddrs();
    // Loopback addresses name the receiver itself, unless they are all this node has (one machine's test mesh).
    const routable = addrs.filter((ma) => !isLoopback(ma));
    void this.publish({ info: this.nodeInfo, addrs: (routable.length ? routable : addrs).slice(0, MAX_ADDRS).map(String) });
  }

  /** Never rejects: a lost announcement is made good by the next one, a lost leave by expiry. */
  private async publish(message: Announcement | typeof LEAVE): Promise<void> {
    try {
      await this.libp2p.services.pubsub.publish(MEMBERS_TOPIC, new TextEncoder().encode(JSON.stringify(message)));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot tell the members about this node');
    }
  }

  /** Connected members are heard of now; members neither connected nor heard of for EXPIRY_PERIODS periods are dropped. */
  private sweep(period: number): void {
    const now = Date.now();
    this.directory.askAgain();
    for (const p of this.directory.peers()) {
      if (p.info) this.heardOf(p.id, p.info, p.addrs);
    }
    for (const [id, m] of this.members) {
      if (now - m.heardAt > EXPIRY_PERIODS * period) this.drop(id, `not heard of for ${Math.round((now - m.heardAt) / 1000)} s`);
    }
    // Answering, a lost member is heard of (the directory) and a member again.
    for (const { id, addrs } of this.gone.sweep(period, now)) this.dialer.connect(id, addrs);
  }

  private heard(msg: Message): void {
    if (msg.topic !== MEMBERS_TOPIC || msg.type !== 'signed' || msg.from.equals(this.libp2p.peerId)) return;
    const message = parseMessage(msg.data);
    if (message === undefined) return; // the validator rejected it already
    const id = msg.from.toString();
    if ('leaving' in message) this.drop(id, 'it left');
    else this.heardOf(id, message.info, message.addrs);
  }

  /**
   * A member whose last connection was lost stays only if it can still be dialed, twice (a member dialing back at
   * once can fail the first). One dialed less than CHECK_GAP_MS ago (its connections keep getting lost) waits for that.
   */
  private async check(id: string): Promise<void> {
    const member = this.members.get(id);
    const wait = (this.checkedAt.get(id) ?? -Infinity) + CHECK_GAP_MS - Date.now();
    if (member === undefined || this.shutdown.signal.aborted) return;
    if (wait > 0) {
      if (!this.checksDue.has(id)) this.checksDue.set(id, setTimeout(() => this.checksDue.delete(id) && void this.check(id), wait).unref());
      return;
    }
    const peer = peerIdFromString(id);
    // Dials that succeed while the connection is gone again at once (a member crashing as it starts) count as tries.
    for (let attempt = 1; this.libp2p.getConnections(peer).length === 0 && this.members.get(id) === member; attempt++) {
      try {
        await this.dialer.dial(id, member.addrs);
      } catch (err) {
        if (this.shutdown.signal.aborted) return;
        if (attempt >= 2) return this.drop(id, `cannot be dialed: ${(err as Error).message}`, member.addrs);
        this.log.debug({ peer: id, err: (err as Error).message }, 'a member whose connection ended could not be dialed; once more');
        await sleep(200 + Math.random() * 500);
      }
    }
    if (this.members.get(id) !== member) return; // dropped meanwhile: nothing of it is kept
    member.heardAt = Date.now();
    this.checkedAt.set(id, member.heardAt);
  }

  /** `addrs` for a member lost, not left nor expired: it is dialed again (gone-members.ts). */
  private drop(id: string, why: string, addrs?: string[]): void {
    const member = this.members.get(id);
    if (member === undefined) return;
    this.members.delete(id);
    this.gone.add(id, addrs);
    this.checkedAt.delete(id);
    this.log.info({ peer: id, name: member.info.name, why }, 'member gone');
  }

  private list(): Listed[] {
    const now = Date.now();
    return [...this.members].map(([id, m]) => ({ id, info: m.info, addrs: m.addrs, ageMs: now - m.heardAt }));
  }

  /** A joining node's first list: the members its first peer knows, with how long ago that peer heard of each. */
  private async askList(peer: PeerId): Promise<void> {
    this.listed = true;
    const merged = await this.merge(peer);
    // Also when that failed: a node connected to its bootstrap peer alone may identify no other peer to ask.
    if (this.listTimers.length === 0) for (const ms of LIST_AGAIN_MS) this.listTimers.push(setTimeout(() => void this.askRandomPeer(), ms).unref());
    if (!merged) this.listed = false; // the next peer identified is asked at once
  }

  private async askRandomPeer(): Promise<void> {
    const peers = this.directory.peers().filter((p) => p.info !== undefined);
    if (peers.length > 0) await this.merge(peerIdFromString(peers[Math.floor(Math.random() * peers.length)].id));
  }

  /** Adds what `peer`'s list knows better than this node; false when it gave none. */
  private async merge(peer: PeerId): Promise<boolean> {
    try {
      const value = await askJson(this.libp2p, peer, MEMBERS_PROTOCOL, { signal: AbortSignal.timeout(LIST_TIMEOUT_MS), maxBytes: MAX_LIST_BYTES });
      if (!Array.isArray(value)) throw new Error('member list is not an array');
      const now = Date.now();
      let added = 0;
      // In random order: joiners told the same list dial different members first, not all the same few.
      for (const entry of shuffle([...value]).slice(0, MAX_LISTED)) {
        const listed = parseListed(entry);
        if (listed === undefined || listed.id === this.libp2p.peerId.toString()) continue;
        const heardAt = now - listed.ageMs;
        if ((this.members.get(listed.id)?.heardAt ?? this.gone.droppedAt(listed.id) ?? -Infinity) >= heardAt) continue;
        this.members.set(listed.id, { info: listed.info, addrs: listed.addrs, heardAt });
        this.dialer.connect(listed.id, listed.addrs);
        added++;
      }
      this.log.debug({ peer: peer.toString(), added }, 'member list');
      return true;
    } catch (err) {
      this.log.debug({ peer: peer.toString(), err: (err as Error).message }, 'cannot get the member list');
      return false;
    }
  }
}
