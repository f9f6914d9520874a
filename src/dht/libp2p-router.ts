// The mesh router on libp2p: provider records in kad-dht (announced in batches), events on gossipsub.
import type { PeerId } from '@libp2p/interface';
import type { CID } from 'multiformats/cid';
import type { Logger } from 'pino';
import { BatchAnnouncer } from './batch-announcer.js';
import { keyToCid } from './kad-keys.js';
import { KAD_PROTOCOL, type MeshNode } from './libp2p-node.js';
import { checkEventMessage, encodeEvent, decodeEvent, eventValidator, EVENTS_TOPIC } from './mesh-events.js';
import { NetworkView } from './network-view.js';
import { PeerDirectory } from './peer-directory.js';
import type { MeshEvent, NodeInfo, PeerRef, PeerStatus, Router } from './router.js';
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
}

/** The part of kad-dht's provider store the router writes its own records to (not on the KadDHT interface). */
interface ProviderStore {
  addProvider(cid: CID, provider: PeerId): Promise<void>;
  getProviders(cid: CID): Promise<PeerId[]>;
}

const K = 20;

export class Libp2pRouter implements Router {
  readonly id: string;
  private readonly libp2p;
  private readonly log: Logger;
  private readonly providerStore: ProviderStore;
  private readonly directory: PeerDirectory;
  private readonly view: NetworkView;
  private readonly announcer: BatchAnnouncer;
  private readonly handlers: Array<(event: MeshEvent, from: string) => void> = [];
  private readonly shutdown = new AbortController();
  private readonly lookupTimeoutMs: number;
  private readonly debounceMs: number;

  /** Keys held, with their CIDs. */
  private readonly held = new Map<string, CID>();
  private added = new Set<string>();
  private removed = new Set<string>();
  private republishDue = false;
  /** Peers known to hold every record they should (set by a full round, extended by catch-ups). */
  private covered = new Set<string>();
  private flushTimer?: NodeJS.Timeout;
  private readonly republishTimer: NodeJS.Timeout;
  private work: Promise<void> = Promise.resolve();

  private constructor(private readonly node: MeshNode, opts: Libp2pRouterOptions) {
    this.libp2p = node.libp2p;
    this.id = this.libp2p.peerId.toString();
    this.log = opts.logger;
    this.lookupTimeoutMs = opts.lookupTimeoutMs ?? 2_000;
    this.debounceMs = opts.announceDebounceMs ?? 10;
    const dht = this.libp2p.services.dht as unknown as { providers?: ProviderStore };
    if (typeof dht.providers?.addProvider !== 'function' || typeof dht.providers.getProviders !== 'function') {
      throw new Error('the kad-dht service exposes no provider store (addProvider/getProviders); kad-dht version mismatch?');
    }
    this.providerStore = dht.providers;
    this.directory = new PeerDirectory(this.libp2p, opts.nodeInfo, this.log.child({ part: 'peers' }));
    this.view = new NetworkView(this.libp2p, K, opts.viewMaxAgeMs ?? 60_000, this.log.child({ part: 'view' }));
    this.announcer = new BatchAnnouncer(this.libp2p, this.log.child({ part: 'announce' }), {
      k: K,
      chunkSize: 2_000,
      chunkTimeoutMs: 30_000,
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
    await router.directory.start();
    const pubsub = router.libp2p.services.pubsub;
    pubsub.topicValidators.set(EVENTS_TOPIC, eventValidator(router.log.child({ part: 'events' })));
    pubsub.addEventListener('message', (evt) => router.deliver(evt.detail));
    pubsub.subscribe(EVENTS_TOPIC);
    router.libp2p.addEventListener('peer:identify', (evt) => {
      // A new DHT server gets the records it should hold (catch-up) with the next batch.
      const peer = evt.detail.peerId.toString();
      if (evt.detail.protocols.includes(KAD_PROTOCOL) && !router.covered.has(peer) && router.held.size > 0) {
        router.schedule(1_000);
      }
    });
    router.libp2p.addEventListener('peer:disconnect', (evt) => router.covered.delete(evt.detail.toString()));
    return router;
  }

  announce(change: { add?: Iterable<string>; remove?: Iterable<string> }): void {
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
    this.schedule(this.debounceMs);
  }

  /** Resolves once every announce() so far has been carried out (records sent, or failures logged). */
  async settled(): Promise<void> {
    while (this.flushTimer !== undefined) {
      await new Promise((r) => setTimeout(r, this.debounceMs));
    }
    let current;
    do {
      current = this.work;
      await current;
    } while (current !== this.work);
  }

  async *findProviders(key: string, signal?: AbortSignal): AsyncIterable<PeerRef> {
    const cid = keyToCid(key);
    const deadline = AbortSignal.timeout(this.lookupTimeoutMs);
    const stop = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
    const seen = new Set<string>();
    if (this.held.has(key)) {
      seen.add(this.id);
      yield { id: this.id, addrs: this.libp2p.getMultiaddrs().map(String) };
    }
    try {
      // kad-dht reads the local provider store first, then asks the network; alone, it would wait for a peer.
      const found = this.libp2p.getConnections().length === 0
        ? this.localProviders(cid, stop)
        : this.networkProviders(cid, stop);
      for await (const ref of found) {
        if (seen.has(ref.id)) continue;
        seen.add(ref.id);
        yield ref;
      }
    } catch (err) {
      if (stop.aborted) return; // deadline or caller: the lookup simply ends
      throw new Error(`finding providers of ${key} failed`, { cause: err });
    }
  }

  peers(): PeerStatus[] {
    return this.directory.peers();
  }

  async publish(event: MeshEvent): Promise<void> {
    if (event.node !== this.id) throw new Error(`cannot publish an event for node ${event.node}: members reject events not signed by the node they name`);
    const data = encodeEvent(event);
    const { error } = decodeEvent(data);
    if (error !== undefined) throw new Error(`invalid mesh event: ${error}`);
    await this.libp2p.services.pubsub.publish(EVENTS_TOPIC, data);
  }

  onEvent(handler: (event: MeshEvent, from: string) => void): void {
    this.handlers.push(handler);
  }

  /** Stops timers, pending batches and the libp2p node. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    clearInterval(this.republishTimer);
    this.directory.stop();
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

  private schedule(delayMs: number): void {
    if (this.flushTimer !== undefined || this.shutdown.signal.aborted) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.work = this.work.then(() => this.runBatch()).catch((err: unknown) => {
        if (!this.shutdown.signal.aborted) this.log.error({ err }, 'announcing provider records failed');
      });
    }, delayMs);
  }

  /** Carries out what announce(), the republish timer and newly joined peers asked for since the last batch. */
  private async runBatch(): Promise<void> {
    const signal = this.shutdown.signal;
    const started = Date.now();
    const removed = this.removed;
    const added = [...this.added].filter((k) => this.held.has(k));
    const republish = this.republishDue;
    this.removed = new Set();
    this.added = new Set();
    this.republishDue = false;

    // Our own store: removed keys go at once (locally); others' copies expire after the record TTL.
    for (const key of removed) await this.libp2p.services.dht.cancelReprovide(keyToCid(key), { signal });
    const own = republish ? [...this.held.keys()] : added;
    for (const key of own) await this.providerStore.addProvider(this.held.get(key)!, this.libp2p.peerId);
    // kad-dht answers GET_PROVIDERS with the providers' peer-store addresses and drops providers without
    // any; libp2p keeps none for itself, so without this, peers asking us would never hear about our keys.
    if (own.length > 0) await this.libp2p.peerStore.patch(this.libp2p.peerId, { multiaddrs: this.libp2p.getMultiaddrs() });

    const view = await this.view.peers(signal, republish);
    const all = [...this.held.values()];
    const newCids = added.map((k) => this.held.get(k)!);
    let sent = 0;
    const reached: string[] = [];
    const failed: string[] = [];
    const tally = (r: { reached: string[]; failed: string[]; records: number }): void => {
      sent += r.records;
      reached.push(...r.reached);
      failed.push(...r.failed);
    };
    if (republish) {
      tally(await this.announcer.send(all, view));
      this.covered = new Set(reached);
    } else {
      const uncovered = new Set(view.map((p) => p.id.toString()).filter((id) => !this.covered.has(id)));
      if (uncovered.size > 0) tally(await this.announcer.send(all, view, (p) => uncovered.has(p.id.toString())));
      tally(await this.announcer.send(newCids, view, (p) => !uncovered.has(p.id.toString())));
      for (const id of reached) if (uncovered.has(id)) this.covered.add(id);
    }
    for (const id of failed) {
      this.covered.delete(id);
      this.view.forget(id);
    }
    if (sent > 0 || removed.size > 0 || failed.length > 0) {
      this.log.info(
        { added: added.length, removed: removed.size, republish, held: this.held.size, peers: view.length, records: sent, failed: failed.length, ms: Date.now() - started },
        'provider records announced',
      );
    }
  }

  private async *localProviders(cid: CID, signal: AbortSignal): AsyncIterable<PeerRef> {
    for (const id of await this.providerStore.getProviders(cid)) {
      signal.throwIfAborted();
      try {
        const peer = await this.libp2p.peerStore.get(id);
        yield { id: id.toString(), addrs: unique(peer.addresses.map((a) => a.multiaddr.toString())) };
      } catch {
        // a provider whose addresses we never learned is of no use
      }
    }
  }

  private async *networkProviders(cid: CID, signal: AbortSignal): AsyncIterable<PeerRef> {
    for await (const event of this.libp2p.services.dht.findProviders(cid, { signal })) {
      if (event.name !== 'PROVIDER') continue;
      for (const info of event.providers) yield { id: info.id.toString(), addrs: unique(info.multiaddrs.map(String)) };
    }
  }
}

function unique(addrs: string[]): string[] {
  return [...new Set(addrs)];
}
