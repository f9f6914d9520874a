import * as protoLoader from '@grpc/proto-loader';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WriteMessages } from './write-messages.js';

async function decoder(): Promise<(b: Buffer) => Record<string, unknown>> {
  const defs = await protoLoader.load('content.proto', {
    includeDirs: [fileURLToPath(new URL('./proto/', import.meta.url))], keepCase: false, longs: Number, enums: String, defaults: true,
  });
  const svc = defs['containerd.services.content.v1.Content'] as protoLoader.ServiceDefinition;
  return (b) => svc.Write.requestDeserialize(b) as Record<string, unknown>;
}

describe('WriteMessages', () => {
  it('encodes what the generated decoder reads as WRITE messages, data cut at the chunk size', async () => {
    const decode = await decoder();
    const ref = 'layermesh-upload-0123456789abcdef';
    const messages = new WriteMessages(ref, 1000, 3);
    const data = randomBytes(2500);
    let offset = 5_000_000_000; // beyond 32 bits, as in a large resumed upload
    const taken: { message: Buffer; length: number; offset: number }[] = [];
    for (let at = 0; at < data.length; at += 700) {
      let rest: Uint8Array = data.subarray(at, at + 700); // bodies arrive in pieces unrelated to the chunk size
      while (rest.length) {
        rest = messages.fill(rest);
        if (messages.full) {
          taken.push({ ...messages.take(offset), offset });
          offset += 1000;
        }
      }
    }
    taken.push({ ...messages.take(offset), offset });
    // All three are intact at once: a buffer is reused only by the `slots`-th message after it.
    const decoded = taken.map((t) => decode(t.message));
    expect(decoded.map((m, i) => [m.action, m.ref, m.offset, taken[i].length])).toEqual([
      ['WRITE', ref, 5_000_000_000, 1000], ['WRITE', ref, 5_000_001_000, 1000], ['WRITE', ref, 5_000_002_000, 500],
    ]);
    expect(Buffer.concat(decoded.map((m) => m.data as Buffer)).equals(data)).toBe(true);
  });
});
