// Announces many keys at once. kad-dht's provide() walks the DHT for every key (100-190 ms of CPU each on a
// 20-node mesh); here one view of the network serves the whole batch: each key's k closest peers are
// computed locally, and each peer receives all of its keys as standard ADD_PROVIDER messages over a few
// streams, so the peers' ordinary kad-dht provider stores hold the records and findProviders works as usual.
import type { PeerId } from '@libp2p/interface';
import type { CID } from 'multiformats/cid';
import type { Logger } from 'pino';
import { addProviderFrame, MessageType, PING_FRAME, readMessageType, type ProviderPeer } from './kad-message.js';
import { cidKadId, closestIndexes } from './kad-keys.js';
import { KAD_PROTOCOL, type MeshLibp2p } from './libp2p-node.js';
import type { ViewPeer } from './network-view.js';

export interface BatchAnnouncerOptions {
  /** Replication: how many closest peers store each record (kad-dht's k). */
  k: number;
  /**
   * Messages per stream. kad-dht buffers what a stream delivers without backpressure and aborts the stream
   * past 4 MiB, so a batch travels in chunks, each acknowledged (a PING after the last record) before the next.
   */
  chunkSize: number;
  /** Per-chunk deadline (dial, send, acknowledgement). */
  chunkTimeoutMs: number;
}

export interface SendResult {
  /** Peers that acknowledged every record sent to them. */
  reached: string[];
  failed: string[];
  records: number;
}

export class BatchAnnouncer {
  constructor(
    private readonly libp2p: MeshLibp2p,
    private readonly log: Logger,
    private readonly opts: BatchAnnouncerOptions,
  ) {}

  /**
   * Sends provider records for `cids` to each key's k closest peers of `view`, skipping peers for which
   * `include` returns false (a catch-up round for peers that joined late).
   */
  async send(cids: readonly CID[], view: readonly ViewPeer[], include?: (peer: ViewPeer) => boolean): Promise<SendResult> {
    const targets = view.filter((p) => include?.(p) ?? true);
    if (cids.length === 0 || targets.length === 0) return { reached: [], failed: [], records: 0 };

    const provider = this.providerPeer();
    const frames = cids.map((cid) => addProviderFrame(cid.multihash.bytes, provider));
    const perPeer = assign(cids, view, this.opts.k, new Set(targets.map((p) => p.id.toString())));

    const result: SendResult = { reached: [], failed: [], records: 0 };
    await Promise.all(
      [...perPeer].map(async ([peer, indexes]) => {
        try {
          await this.sendTo(peer, indexes.map((i) => frames[i]));
          result.reached.push(peer.toString());
          result.records += indexes.length;
        } catch (err) {
          result.failed.push(peer.toString());
          this.log.warn({ peer: peer.toString(), records: indexes.length, err: (err as Error).message }, 'cannot send provider records');
        }
      }),
    );
    return result;
  }

  private providerPeer(): ProviderPeer {
    return {
      id: this.libp2p.peerId.toMultihash().bytes,
      addrs: this.libp2p.getMultiaddrs().map((a) => a.bytes),
    };
  }

  private async sendTo(peer: PeerId, frames: Uint8Array[]): Promise<void> {
    for (let i = 0; i < frames.length; i += this.opts.chunkSize) {
      await this.sendChunk(peer, frames.slice(i, i + this.opts.chunkSize));
    }
  }

  private async sendChunk(peer: PeerId, frames: Uint8Array[]): Promise<void> {
    const signal = AbortSignal.timeout(this.opts.chunkTimeoutMs);
    const stream = await this.libp2p.dialProtocol(peer, KAD_PROTOCOL, { signal });
    try {
      if (!stream.send(Buffer.concat([...frames, PING_FRAME]))) await stream.onDrain({ signal });
      const type = await readMessageType(stream, signal);
      if (type !== MessageType.PING) throw new Error(`expected a PING reply, got message type ${type}`);
      await stream.close({ signal });
    } catch (err) {
      stream.abort(err as Error);
      throw err;
    }
  }
}

/** For every peer of `targets`, the indexes of the keys it is among the k closest peers of (in `view`). */
function assign(cids: readonly CID[], view: readonly ViewPeer[], k: number, targets: Set<string>): Map<PeerId, number[]> {
  const out = new Map<PeerId, number[]>();
  const add = (peer: ViewPeer, index: number): void => {
    if (!targets.has(peer.id.toString())) return;
    let list = out.get(peer.id);
    if (list === undefined) out.set(peer.id, (list = []));
    list.push(index);
  };
  if (view.length <= k) {
    // Every peer is among the k closest of every key.
    for (const peer of view) for (let i = 0; i < cids.length; i++) add(peer, i);
    return out;
  }
  const kadIds = view.map((p) => p.kadId);
  cids.forEach((cid, i) => {
    for (const p of closestIndexes(cidKadId(cid), kadIds, k)) add(view[p], i);
  });
  return out;
}
