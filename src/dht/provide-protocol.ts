// /layermesh/provide/1.0.0: many provider records in one message, for peers that speak it.
//
// kad-dht's ADD_PROVIDER handler costs its receiver ~150 µs of CPU per record (a peer-store merge under a
// lock, multiaddr parsing, one stream read per message); in a fleet smaller than k every member stores
// every record, so one host announcing 10,000 keys costs each peer 1.5 s of CPU, and costs a 20-node
// simulation on one 2-core machine half a minute. Here the receiver merges the provider's addresses once
// per message and writes each record straight into its kad-dht provider store (~10 µs each): the records
// are exactly those ADD_PROVIDER would have stored, found by the standard GET_PROVIDERS and findProviders.
//
// Request: one length-prefixed ProvideBatch{keys: multihashes, addrs: the provider's multiaddrs}; the
// provider is always the authenticated remote peer. Reply: one length-prefixed ProvideAck{stored}.
import protobuf from 'protobufjs';
import { lpStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import * as Digest from 'multiformats/hashes/digest';
import type { Connection, PeerId, Stream } from '@libp2p/interface';
import type { Logger } from 'pino';
import type { MeshLibp2p } from './libp2p-node.js';

export const PROVIDE_PROTOCOL = '/layermesh/provide/1.0.0';
/** Bounds one request: 20,000 keys of 34 bytes plus addresses fit. */
const MAX_MESSAGE_BYTES = 1 << 20;
const MAX_ADDRS = 64;
const REMERGE_MS = 60_000;

const root = protobuf.Root.fromJSON({
  nested: {
    ProvideBatch: {
      fields: {
        keys: { rule: 'repeated', type: 'bytes', id: 1 },
        addrs: { rule: 'repeated', type: 'bytes', id: 2 },
      },
    },
    ProvideAck: { fields: { stored: { type: 'uint32', id: 1 } } },
  },
});
const ProvideBatch = root.lookupType('ProvideBatch');
const ProvideAck = root.lookupType('ProvideAck');

/** Where received records go: kad-dht's provider store. */
export interface ProviderStore {
  addProvider(cid: CID, provider: PeerId): Promise<void>;
  getProviders(cid: CID): Promise<PeerId[]>;
}

/** Serves the protocol: stores the records a peer sends about itself. */
export async function handleProvide(libp2p: MeshLibp2p, store: ProviderStore, log: Logger): Promise<void> {
  const merged = new Map<string, { addrs: string; at: number }>();
  libp2p.addEventListener('peer:disconnect', (evt) => merged.delete(evt.detail.toString()));
  await libp2p.handle(PROVIDE_PROTOCOL, async (stream: Stream, connection: Connection) => {
    const provider = connection.remotePeer;
    const lp = lpStream(stream, { maxDataLength: MAX_MESSAGE_BYTES });
    const signal = AbortSignal.timeout(30_000);
    try {
      const batch = ProvideBatch.decode((await lp.read({ signal })).subarray()) as unknown as { keys: Uint8Array[]; addrs: Uint8Array[] };
      if (batch.addrs.length === 0 || batch.addrs.length > MAX_ADDRS) throw new Error(`${batch.addrs.length} provider addresses`);
      // Like ADD_PROVIDER: a record is only useful with the addresses to reach its provider. The merge
      // is most of a small request's cost (a replicating node announces each layer as it lands), so
      // the same addresses from the same peer are merged once a minute at most.
      const addrs = batch.addrs.map((a) => Buffer.from(a).toString('hex')).join();
      const last = merged.get(provider.toString());
      if (last?.addrs !== addrs || Date.now() - last.at > REMERGE_MS) {
        await libp2p.peerStore.merge(provider, { multiaddrs: batch.addrs.map((a) => multiaddr(a)) });
        merged.set(provider.toString(), { addrs, at: Date.now() });
      }
      for (const key of batch.keys) await store.addProvider(CID.createV1(raw.code, Digest.decode(key)), provider);
      await lp.write(ProvideAck.encode({ stored: batch.keys.length }).finish(), { signal });
      await stream.close({ signal });
    } catch (err) {
      log.warn({ peer: provider.toString(), err: (err as Error).message }, 'rejected provider records');
      stream.abort(err as Error);
    }
  }, { maxInboundStreams: 8 });
}

/** Sends provider records for `keys` (multihashes) to `peer`; resolves once the peer has stored them all. */
export async function sendProvide(libp2p: MeshLibp2p, peer: PeerId, keys: Uint8Array[], addrs: Uint8Array[], signal: AbortSignal): Promise<void> {
  const stream = await libp2p.dialProtocol(peer, PROVIDE_PROTOCOL, { signal });
  try {
    const lp = lpStream(stream, { maxDataLength: 1024 });
    await lp.write(ProvideBatch.encode({ keys, addrs }).finish(), { signal });
    const ack = ProvideAck.decode((await lp.read({ signal })).subarray()) as unknown as { stored: number };
    if (ack.stored !== keys.length) throw new Error(`peer stored ${ack.stored} of ${keys.length} provider records`);
    await stream.close({ signal });
  } catch (err) {
    stream.abort(err as Error);
    throw err;
  }
}
