// The few kad-dht wire messages the provider batches send themselves: ADD_PROVIDER and PING, length-prefixed
// protobuf exactly as any kad-dht peer reads them (field numbers are those of the libp2p Kademlia spec's
// dht.proto: Message.type = 1, key = 2, providerPeers = 9; Peer.id = 1, addrs = 2).
import protobuf from 'protobufjs';
import { lpStream } from '@libp2p/utils';
import type { Stream } from '@libp2p/interface';

const root = protobuf.Root.fromJSON({
  nested: {
    Peer: {
      fields: {
        id: { type: 'bytes', id: 1 },
        addrs: { rule: 'repeated', type: 'bytes', id: 2 },
      },
    },
    Message: {
      fields: {
        type: { type: 'int32', id: 1 },
        key: { type: 'bytes', id: 2 },
        providerPeers: { rule: 'repeated', type: 'Peer', id: 9 },
      },
    },
  },
});
const Message = root.lookupType('Message');

export const MessageType = { ADD_PROVIDER: 2, PING: 5 } as const;

interface ProviderPeer {
  /** Peer id multihash bytes. */
  id: Uint8Array;
  addrs: Uint8Array[];
}

/** One length-prefixed ADD_PROVIDER message: `provider` provides the content whose multihash is `key`. */
export function addProviderFrame(key: Uint8Array, provider: ProviderPeer): Uint8Array {
  return Message.encodeDelimited({ type: MessageType.ADD_PROVIDER, key, providerPeers: [provider] }).finish();
}

/** A length-prefixed PING: kad-dht answers it in order, after every message sent before it. */
export const PING_FRAME: Uint8Array = Message.encodeDelimited({ type: MessageType.PING }).finish();

/** Reads one length-prefixed message from `stream` and returns its type. */
export async function readMessageType(stream: Stream, signal: AbortSignal): Promise<number> {
  // lpStream, not the stream's own async iterator: that one never ends when the remote closed its side
  // before iteration started.
  const frame = await lpStream(stream, { maxDataLength: 64 * 1024 }).read({ signal });
  return (Message.decode(frame.subarray()) as unknown as { type: number }).type;
}
