// One JSON document per stream: the responder writes it and closes. For small control
// exchanges between members (node info, inventories); blob bytes never travel this way.
import { byteStream } from '@libp2p/utils';
import type { PeerId, Stream } from '@libp2p/interface';
import type { MeshLibp2p } from './libp2p-node.js';

export async function serveJson(libp2p: MeshLibp2p, protocol: string, produce: () => unknown | Promise<unknown>): Promise<void> {
  await libp2p.handle(protocol, async (stream: Stream) => {
    try {
      stream.send(new TextEncoder().encode(JSON.stringify(await produce())));
      await stream.close();
    } catch (err) {
      stream.abort(err as Error);
    }
  });
}

export async function askJson(libp2p: MeshLibp2p, peer: PeerId, protocol: string, opts: { signal: AbortSignal; maxBytes: number }): Promise<unknown> {
  const stream = await libp2p.dialProtocol(peer, protocol, { signal: opts.signal });
  // byteStream, not the stream's own async iterator: that one never ends when the remote closed its side
  // before iteration started (which a fast responder does).
  const bytes = byteStream(stream, { maxBufferSize: opts.maxBytes });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    // The asker sends nothing: closing its side at once lets the stream end on both peers once the answer
    // is read. Left open, it lasted as long as the connection (one per peer and connection: thousands in
    // a fleet of hundreds).
    await stream.close({ signal: opts.signal });
    for (let chunk = await bytes.read({ signal: opts.signal }); chunk !== null; chunk = await bytes.read({ signal: opts.signal })) {
      // maxBufferSize bounds what waits unread; this bounds the answer.
      total += chunk.byteLength;
      if (total > opts.maxBytes) throw new Error(`${protocol}: the answer is larger than ${opts.maxBytes} bytes`);
      chunks.push(chunk.subarray());
    }
  } catch (err) {
    stream.abort(err as Error);
    throw err;
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8'));
}
