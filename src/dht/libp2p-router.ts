// The mesh router on libp2p: provider records in kad-dht (announced in batches), events on gossipsub.
import type { CID } from 'multiformats/cid';
import type { Logger } from 'pino';
import { ProviderBatches } from './provider-batches.js';
import { keyToCid } from './kad-keys.js';
import { KAD_PROTOCOL, type MeshNode } from './libp2p-node.js';
import { checkEventMessage, encodeEvent, decodeEvent, eventValidator, EVENTS_TOPIC } from './mesh-events.js';
import { NetworkView } from './network-view.js';
import { Roster, type RosterOptions } from './roster.js';
import { dhtProviders, storedProviders } from './provider-lookup.js';
import { handleProvide, type ProviderStore } from './provide-protocol.js';
import type { AnnounceChange, GossipEvent, NodeInfo, PeerRef, PeerStatus, Router } from './router.js';
import { lookupSeconds } from './metrics.js';
import type { Message } from '@libp2p/gossipsub';

export interface Libp2pRouterOptions {
  node: MeshNode;
  nodeInfo: NodeInfo;
  logger: Logger;
  /** How often every held key is announced again; default a third of the record TTL. */
  republishIntervalMs?: number;
  /** Upper bound of one findProviders (on top of the caller's signal); default 2 s. */
  lookupTimeoutMs?: number;
  /** announce() calls within this window form one batch; default 10 ms. */
  announceDebounceMs?: number;
  /** How long a walk of the DHT serves batches before the next one walks again; default 60 s. */
  viewMaxAgeMs?: number;
  /** Send records over /layermesh/provide/1.0.0 to peers that speak it; default true (false: ADD_PROVIDER only). */
  batchProtocol?: boolean;
  /** How members tell each other about themselves (roster.ts). */
  roster?: RosterOptions;
}

const K = 20;
/**
 * Batches start at least this far apart, a replicating node adding a key as each layer lands: every batch is a
 * request to each peer. While added keys keep coming, the gap doubles up to BATCH_GAP_MAX_MS, back after a quiet
 * spell. Urgent changes (an image name completing a push or a copy) do not wait, and take all that is pending.
 */
const BATCH_GAP_MS = 1_000;
const BATCH_GAP_MAX_MS = 8_000;
const RETRY_MIN_MS = 5_000;
const RETRY_MAX_MS = 300_000;

export class Libp2pRouter implements Router {
  readonly id: string;
  private readonly libp2p;
  private readonly log: Logger;
  private readonly providerStore: ProviderStore;
  private readonly roster: Roster;
  private readonly view: NetworkView;
  private readonly batches: ProviderBatches;
  private readonly handlers: Array<(event: GossipEvent, from: string) => void> = [];
  private readonly shutdown = new AbortController();
  private readonly lookupTimeoutMs: number;
  private readonly debounceMs: number;

  /** Keys held, with their CIDs. */
  private readonly held = new Map<string, CID>();
  private added = new Set<string>();
  private removed = new Set<string>();
  private republishDue = false;
  lastRepublish?: Date; // every held key last sent again to the peers that should hold it
  /** Peers known to hold every record they should (set by a full round, extended by catch-ups). */
  private covered = new Set<string>();
  private flushTimer?: NodeJS.Timeout;
  private flushAt = 0;
  private lastBatchAt = -Infinity;
  private gapMs = BATCH_GAP_MS;
  private readonly republishTimer: NodeJS.Timeout;
  private work: Promise<void> = Promise.resolve();
  private retryDelayMs = RETRY_MIN_MS;

  private constructor(private readonly node: MeshNode, opts: Libp2pRouterOptions) {
    this.libp2p = node.libp2p;
    this.id = this.libp2p.peerId.toString();
    this.log = opts.logger;
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? 2_000;
    this.debounceMs = opts.announceDebounceMs ?? 10;
    // kad-dht's provider store is a public property of its service, though not on the KadDHT interface.
    const dht = this.libp2p.services.dht as unknown as { providers?: ProviderStore };
    if (typeof dht.providers?.addProvider !== 'function' || typeof dht.providers.getProviders !== 'function') {
      throw new Error('the kad-dht service exposes no provider store (addProvider/getProviders); kad-dht version mismatch?');
    }
    this.providerStore = dht.providers;
    this.roster = new Roster(this.libp2p, opts.nodeInfo, this.log.child({ component: 'router.roster' }), { maxConnections: opts.node.maxConnections, ...opts.roster });
    this.view = new NetworkView(this.libp2p, K, opts.viewMaxAgeMs ?? 60_000, this.log.child({ component: 'router.view' }));
    this.batches = new ProviderBatches(this.libp2p, this.log.child({ component: 'router.announce' }), {
      k: K,
      batchProtocol: opts.batchProtocol ?? true,
      batchSize: 5_000, // ~50 ms of the receiver's CPU
      addProviderChunk: 500, // ~75 ms of the receiver's CPU
      window: 2,
      requestTimeoutMs: 30_000,
    });
    const republishMs = opts.republishIntervalMs ?? Math.floor(node.recordTtlMs / 3);
    this.republishTimer = setInterval(() => {
      this.republishDue = true;
      this.schedule(0);
    }, republishMs);
    this.republishTimer.unref();
  }

  /** Builds the router around a started node and starts answering NodeInfo requests and gossip. */
  static async create(opts: Libp2pRouterOptions): Promise<Libp2pRouter> {
    const router = new Libp2pRouter(opts.node, opts);
    await router.roster.start();
    await handleProvide(router.libp2p, router.providerStore, router.log.child({ component: 'router.provide' }));
    const pubsub = router.libp2p.services.pubsub;
    pubsub.topicValidators.set(EVENTS_TOPIC, eventValidator(router.log.child({ component: 'router.events' })));
    pubsub.addEventListener('message', (evt) => router.deliver(evt.detail));
    pubsub.subscribe(EVENTS_TOPIC);
    router.libp2p.addEventListener('peer:identify', (evt) => {
      // A new DHT server gets the records it should hold (catch-up) with the next batch.
      const peer = evt.detail.peerId.toString();
      if (!evt.detail.protocols.includes(KAD_PROTOCOL)) return;
      if (!router.covered.has(peer) && router.held.size > 0) router.schedule(1_000);
      // Even a node that holds nothing yet knows its view before its first announcement (a push) needs it.
      // Later walks only serve announcements (peers() refreshes a stale view): walking again whenever a
      // peer connects made every node of a 200-node fleet walk its ~30 regions each minute.
      router.view.warmFirst(router.shutdown.signal);
    });
    router.libp2p.addEventListener('peer:disconnect', (evt) => router.covered.delete(evt.detail.toString()));
    return router;
  }

  announce(change: AnnounceChange): void {
    if (this.shutdown.signal.aborted) return;
    for (const key of change.remove ?? []) {
      if (this.held.delete(key)) this.removed.add(key);
      this.added.delete(key);
    }
    for (const key of change.add ?? []) {
      if (this.held.has(key)) continue;
      this.held.set(key, keyToCid(key));
      this.added.add(key);
      this.removed.delete(key);
    }
    this.schedule(this.debounceMs, change.urgent);
  }

  /**
   * Resolves once every announce() so far has been carried out: records sent, or failures logged (their
   * retries, later, are not waited for).
   */
  async settled(): Promise<void> {
    for (;;) {
      const current = this.work;
      await current;
      const pending = this.added.size > 0 || this.removed.size > 0 || this.republishDue;
      if (!pending && current === this.work) return;
      await new Promise((r) => setTimeout(r, this.debounceMs));
    }
  }

  async *findProviders(key: string, signal?: AbortSignal): AsyncIterable<PeerRef> {
    const cid = keyToCid(key);
    const deadline = AbortSignal.timeout(this.lookupTimeoutMs);
    const stop = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
    // Self comes first when held, and never otherwise: peers may still hold records of a key this node
    // removed (they expire after the record TTL), and sending anyone to this node for it would be wrong.
    const seen = new Set<string>([this.id]);
    if (this.held.has(key)) yield { id: this.id, addrs: this.libp2p.getMultiaddrs().map(String) };
    const timer = lookupSeconds.startTimer();
    let found = false;
    try {
      // kad-dht reads the local provider store first, then asks the network; alone, or when every record is here, that is waste.
      const providers = this.libp2p.getConnections().length === 0 || this.view.holdsEveryRecord()
        ? storedProviders(this.libp2p, this.providerStore, cid, stop, this.log)
        : dhtProviders(this.libp2p, cid, stop);
      for await (const ref of providers) {
        if (seen.has(ref.id)) continue;
        seen.add(ref.id);
        if (!found) timer({ result: 'found' });
        found = true;
        yield ref;
      }
    } catch (err) {
      if (stop.aborted) return; // deadline or caller: the lookup simply ends
      throw new Error(`finding providers of ${key} failed`, { cause: err });
    } finally {
      if (!found) timer({ result: 'none' });
    }
  }

  peers(): PeerStatus[] {
    return this.roster.peers();
  }

  async publish(event: GossipEvent): Promise<void> {
    if (event.node !== this.id) throw new Error(`cannot publish an event for node ${event.node}: members reject events not signed by the node they name`);
    const data = encodeEvent(event);
    const { error } = decodeEvent(data);
    if (error !== undefined) throw new Error(`invalid mesh event: ${error}`);
    await this.libp2p.services.pubsub.publish(EVENTS_TOPIC, data);
  }

  onEvent(handler: (event: GossipEvent, from: string) => void): void {
    this.handlers.push(handler);
  }

  /** Stops timers, pending batches and the libp2p node. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    clearInterval(this.republishTimer);
    await this.roster.stop();
    await this.work;
    await this.node.stop();
  }

  private deliver(msg: Message): void {
    if (msg.topic !== EVENTS_TOPIC || msg.type !== 'signed' || msg.from.equals(this.libp2p.peerId)) return;
    const { event } = checkEventMessage(msg); // already validated; this only recovers the parsed event
    if (event === undefined) return;
    for (const handler of this.handlers) {
      try {
        handler(event, msg.from.toString());
      } catch (err) {
        this.log.error({ err, event }, 'mesh event handler failed');
      }
    }
  }

  /** Runs a batch in `delayMs` (not within the last one's gap unless `urgent`) or sooner if due; monotonic: a clock set back must not delay it. */
  private schedule(delayMs: number, urgent = false): void {
    const at = Math.max(performance.now() + delayMs, urgent ? 0 : this.lastBatchAt + this.gapMs);
    delayMs = at - performance.now();
    if (this.shutdown.signal.aborted || (this.flushTimer !== undefined && this.flushAt <= at)) return;
    clearTimeout(this.flushTimer);
    this.flushAt = at;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.work = this.work.then(() => this.runBatch()).catch((err: unknown) => {
        if (!this.shutdown.signal.aborted) this.log.error({ err }, 'announcing provider records failed');
      });
    }, delayMs);
  }

  /**
   * Carries out what announce(), the republish timer and newly joined peers asked for since the last batch. A peer
   * is "covered" once sent every record it should hold: uncovered peers (new, restarted, or failed last time) get all held keys.
   */
  private async runBatch(): Promise<void> {
    const signal = this.shutdown.signal;
    const started = performance.now();
    const busy = this.added.size > 0 && started - this.lastBatchAt < 2 * this.gapMs;
    this.gapMs = busy ? Math.min(2 * this.gapMs, BATCH_GAP_MAX_MS) : BATCH_GAP_MS;
    this.lastBatchAt = started;
    // Take what is pending now: announce() may change it while this batch awaits.
    const removed = [...this.removed].map(keyToCid);
    const added = [...this.added].map((k) => this.held.get(k)!);
    const all = [...this.held.values()];
    const republish = this.republishDue;
    this.removed = new Set();
    this.added = new Set();
    this.republishDue = false;

    // Our own store: removed keys go at once (locally); others' copies expire after the record TTL.
    for (const cid of removed) await this.libp2p.services.dht.cancelReprovide(cid, { signal });
    const own = republish ? all : added;
    for (const cid of own) await this.providerStore.addProvider(cid, this.libp2p.peerId);
    // kad-dht answers GET_PROVIDERS with the providers' peer-store addresses and drops providers without
    // any; libp2p keeps none for itself, so without this, peers asking us would never hear about our keys.
    if (own.length > 0) await this.libp2p.peerStore.patch(this.libp2p.peerId, { multiaddrs: this.libp2p.getMultiaddrs() });

    const view = await this.view.peers(signal, republish);
    const ids = view.map((p) => p.id.toString());
    const uncovered = new Set(republish ? ids : ids.filter((id) => !this.covered.has(id)));
    const none = { reached: [], failed: [], records: 0 };
    const results = await Promise.all([
      uncovered.size > 0 ? this.batches.send(all, view, signal, (p) => uncovered.has(p.id.toString())) : none,
      added.length > 0 && uncovered.size < ids.length ? this.batches.send(added, view, signal, (p) => !uncovered.has(p.id.toString())) : none,
    ]);
    if (republish) {
      this.covered = new Set();
      this.lastRepublish = new Date();
    }
    for (const id of uncovered) this.covered.add(id);
    const failed = results.flatMap((r) => r.failed);
    for (const id of failed) {
      this.covered.delete(id);
      this.view.forget(id);
    }
    // Peers that failed are uncovered: catch them up soon, backing off while they keep failing.
    if (failed.length === 0) {
      this.retryDelayMs = RETRY_MIN_MS;
    } else {
      this.schedule(this.retryDelayMs);
      this.retryDelayMs = Math.min(this.retryDelayMs * 2, RETRY_MAX_MS);
    }
    const records = results.reduce((n, r) => n + r.records, 0);
    if (records > 0 || removed.length > 0 || failed.length > 0) {
      const fields = { added: added.length, removed: removed.length, republish, held: all.length, peers: view.length, records, failed: failed.length };
      this.log.info({ ...fields, ms: Math.round(performance.now() - started) }, 'provider records announced');
    }
  }
}
