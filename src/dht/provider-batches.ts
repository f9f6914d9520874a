// Announces many keys at once. kad-dht's provide() walks the DHT for every key, at a high CPU cost each;
// here one view of the network serves the whole batch: each key's k closest peers are
// computed locally and each peer receives all of its records in a few messages: over
// /layermesh/provide/1.0.0 when it speaks it (provide-protocol.ts), else as standard kad-dht ADD_PROVIDER
// messages, many per stream. Either way the records land in the peers' kad-dht provider stores, where the
// standard GET_PROVIDERS and findProviders find them.
import type { PeerId } from '@libp2p/interface';
import type { CID } from 'multiformats/cid';
import type { Logger } from 'pino';
import { addProviderFrame, MessageType, PING_FRAME, readMessageType } from './kad-message.js';
import { cidKadId, closestIn } from './kad-keys.js';
import { KAD_PROTOCOL, type MeshLibp2p } from './libp2p-node.js';
import type { ViewPeer } from './network-view.js';
import { PROVIDE_PROTOCOL, sendProvide } from './provide-protocol.js';

const RETRY_DELAYS_MS = [500, 2_000];
const P2P_CODE = 0x01a5;

export interface ProviderBatchesOptions {
  /** Replication: how many closest peers store each record (kad-dht's k). */
  k: number;
  /** Use /layermesh/provide/1.0.0 with peers that speak it (false: ADD_PROVIDER only, for comparison). */
  batchProtocol: boolean;
  /** Records per /layermesh/provide/1.0.0 request. */
  batchSize: number;
  /**
   * Records per ADD_PROVIDER stream. Each stream ends with a PING whose reply acknowledges every record
   * before it; that is the only flow control there is: kad-dht reads a stream as fast as it arrives
   * (aborting it past 4 MiB) and handles buffered messages back to back, so unbounded sending would stall
   * its event loop for seconds, long enough for libp2p's connection monitor to time out pings and drop
   * connections.
   */
  addProviderChunk: number;
  /** Requests (or streams) in flight per peer. */
  window: number;
  /** Deadline of one request (dial, send, acknowledgement); a failed one is retried twice. */
  requestTimeoutMs: number;
}

export interface SendResult {
  /** Peers that acknowledged every record sent to them. */
  reached: string[];
  failed: string[];
  records: number;
}

type Request = (signal: AbortSignal) => Promise<void>;

export class ProviderBatches {
  constructor(
    private readonly libp2p: MeshLibp2p,
    private readonly log: Logger,
    private readonly opts: ProviderBatchesOptions,
  ) {}

  /**
   * Sends provider records for `cids` to each key's k closest peers of `view`, skipping peers for which
   * `include` returns false (a catch-up round for peers that joined late). Never rejects: peers that could
   * not be sent to are listed as failed.
   */
  async send(cids: readonly CID[], view: readonly ViewPeer[], signal: AbortSignal, include?: (peer: ViewPeer) => boolean): Promise<SendResult> {
    const targets = new Set(view.filter((p) => include?.(p) ?? true).map((p) => p.id.toString()));
    const result: SendResult = { reached: [], failed: [], records: 0 };
    if (cids.length === 0 || targets.size === 0) return result;

    // Addresses without the /p2p/<id> suffix, as identify reports them: receivers merge them into their
    // peer store, and a second spelling of each address would make every later merge dearer.
    const addrs = this.libp2p.getMultiaddrs().map((a) => a.decapsulateCode(P2P_CODE).bytes);
    const keys = cids.map((c) => c.multihash.bytes);
    let frames: Uint8Array[] | undefined; // ADD_PROVIDER messages, built only if some peer needs them
    const addProviderFrames = (): Uint8Array[] =>
      (frames ??= keys.map((key) => addProviderFrame(key, { id: this.libp2p.peerId.toMultihash().bytes, addrs })));

    await Promise.all(
      [...assignRecords(cids, view, this.opts.k, targets)].map(async ([peer, indexes]) => {
        try {
          const requests = (await this.speaksBatch(peer))
            ? chunks(indexes, this.opts.batchSize).map((part): Request =>
                (signal) => sendProvide(this.libp2p, peer, part.map((i) => keys[i]), addrs, signal))
            : chunks(indexes, this.opts.addProviderChunk).map((part): Request =>
                (signal) => this.sendAddProviders(peer, part.map((i) => addProviderFrames()[i]), signal));
          await this.run(peer, requests, signal);
          result.reached.push(peer.toString());
          result.records += indexes.length;
        } catch (err) {
          result.failed.push(peer.toString());
          if (!signal.aborted) this.log.warn({ peer: peer.toString(), records: indexes.length, err: (err as Error).message }, 'cannot send provider records');
        }
      }),
    );
    return result;
  }

  private async speaksBatch(peer: PeerId): Promise<boolean> {
    if (!this.opts.batchProtocol) return false;
    try {
      return (await this.libp2p.peerStore.get(peer)).protocols.includes(PROVIDE_PROTOCOL);
    } catch {
      return false;
    }
  }

  /** Runs `requests` in order, `window` at a time, each retried twice (while connected) before the send fails. */
  private async run(peer: PeerId, requests: Request[], signal: AbortSignal): Promise<void> {
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < requests.length) await this.withRetry(peer, requests[next++], signal);
    };
    await Promise.all(Array.from({ length: Math.min(this.opts.window, requests.length) }, lane));
  }

  private async withRetry(peer: PeerId, request: Request, signal: AbortSignal): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await request(AbortSignal.any([signal, AbortSignal.timeout(this.opts.requestTimeoutMs)]));
      } catch (err) {
        // A peer we cannot even connect to is gone or unreachable: retrying only delays the batch.
        if (signal.aborted || attempt >= RETRY_DELAYS_MS.length || this.libp2p.getConnections(peer).length === 0) throw err;
        this.log.debug({ peer: peer.toString(), attempt, err: (err as Error).message }, 'provider records request failed; retrying');
        await new Promise((r) => setTimeout(r, RETRY_DELAYS_MS[attempt]));
      }
    }
  }

  private async sendAddProviders(peer: PeerId, frames: Uint8Array[], signal: AbortSignal): Promise<void> {
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

function chunks<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

/** For every peer of `targets`, the indexes of the keys it is among the k closest peers of (in `view`). */
export function assignRecords(cids: readonly CID[], view: readonly ViewPeer[], k: number, targets: Set<string>): Map<PeerId, number[]> {
  // By the peer's place in the view: undefined for a peer not targeted.
  const lists = view.map((p) => (targets.has(p.id.toString()) ? ([] as number[]) : undefined));
  if (view.length <= k) {
    // Every peer is among the k closest of every key.
    for (const list of lists) for (let i = 0; i < cids.length; i++) list?.push(i);
  } else {
    const closest = closestIn(view.map((p) => p.kadId));
    cids.forEach((cid, i) => {
      for (const p of closest(cidKadId(cid), k)) lists[p]?.push(i);
    });
  }
  return new Map(view.flatMap((p, j): [PeerId, number[]][] => (lists[j]?.length ? [[p.id, lists[j]]] : [])));
}
