// Where the providers of a key come from: this node's provider store, or a walk of the DHT.
import type { CID } from 'multiformats/cid';
import type { Logger } from 'pino';
import type { MeshNode } from './libp2p-node.js';
import type { ProviderStore } from './provide-protocol.js';
import type { PeerRef } from './router.js';

type Libp2p = MeshNode['libp2p'];

/** Providers this node has records of, with the addresses its peer store knows. */
export async function* storedProviders(libp2p: Libp2p, providers: ProviderStore, cid: CID, signal: AbortSignal, log: Logger): AsyncIterable<PeerRef> {
  for (const id of await providers.getProviders(cid)) {
    signal.throwIfAborted();
    try {
      const peer = await libp2p.peerStore.get(id);
      yield { id: id.toString(), addrs: unique(peer.addresses.map((a) => a.multiaddr.toString())) };
    } catch (err) {
      // A provider whose addresses we never learned is of no use; any other failure is the peer store's: told, and
      // the other providers still given (a pull falls back on them, or on the upstream).
      if ((err as Error | undefined)?.name !== 'NotFoundError') log.warn({ err, provider: id.toString(), key: cid.toString() }, 'cannot read a provider from the peer store');
    }
  }
}

/** Providers found by kad-dht, which reads the local provider store first and then asks the network. */
export async function* dhtProviders(libp2p: Libp2p, cid: CID, signal: AbortSignal): AsyncIterable<PeerRef> {
  for await (const event of libp2p.services.dht.findProviders(cid, { signal })) {
    if (event.name !== 'PROVIDER') continue;
    for (const info of event.providers) yield { id: info.id.toString(), addrs: unique(info.multiaddrs.map(String)) };
  }
}

function unique(addrs: string[]): string[] {
  return [...new Set(addrs)];
}
