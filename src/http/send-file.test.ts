// Bodies sent from reused buffers: a client that reads slowly must still get every chunk as it was when sent.
import { once } from 'node:events';
import { get } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { pino } from 'pino';
import { afterEach, expect, it } from 'vitest';
import { waitFor } from '../../test/helpers/wait.js';
import { sendChunks } from './send-file.js';

const log = pino({ level: 'silent' });
const CHUNK = 1 << 20;
const CHUNKS = 48; // more than loopback's socket buffers hold, so that writes queue behind a slow reader
let app: FastifyInstance | undefined;
afterEach(async () => app?.close());

/** A server answering GET /blob with `handler`; the URL. */
async function serve(handler: (req: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply>): Promise<string> {
  app = Fastify();
  app.get('/blob', handler);
  await app.listen({ host: '127.0.0.1', port: 0 });
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}/blob`;
}

/** Chunk i is CHUNK bytes of the value i, written into one of two buffers taken in turn (as Spool.lend does). */
async function* lent(): AsyncGenerator<Buffer> {
  const buffers = [Buffer.alloc(CHUNK), Buffer.alloc(CHUNK)];
  for (let i = 0; i < CHUNKS; i++) yield buffers[i & 1].fill(i);
}

it('sends every chunk of a source that refills its buffers, to a client that reads slowly', async () => {
  const url = await serve(async (_req, reply) => {
    await sendChunks(reply, lent(), log);
    return reply;
  });
  const body = await new Promise<Buffer>((resolve, reject) => {
    get(url, (res) => {
      const parts: Buffer[] = [];
      res.pause();
      // Nothing read for a while: the server's writes back up behind full socket buffers.
      void sleep(300).then(() => res.resume());
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => resolve(Buffer.concat(parts)));
      res.on('error', reject);
    }).on('error', reject);
  });
  expect(body.length).toBe(CHUNK * CHUNKS);
  const wrong = [...Array(CHUNKS).keys()].filter((i) => body.subarray(i * CHUNK, (i + 1) * CHUNK).some((b) => b !== i));
  expect(wrong).toEqual([]);
});

it('ends quietly when the client has hung up and then the source fails', async () => {
  let done!: Promise<void>;
  const url = await serve(async (req, reply) => {
    await once(req.raw.socket, 'close'); // gone before the first byte is sent: every write fails
    async function* breaking() {
      yield Buffer.alloc(CHUNK);
      throw new Error('the source broke'); // as a spool does when its transfer ends
    }
    done = sendChunks(reply, breaking(), log);
    await done;
    return reply;
  });
  const req = get(url).on('error', () => undefined);
  await sleep(50);
  req.destroy();
  await waitFor('the response to end', () => done && done.then(() => true), { intervalMs: 5 });
  await sleep(100); // an unhandled rejection of the failed write would fail the run here (and crash meshd)
});

it('lets go of its source when the client hangs up while a write is waiting on it', async () => {
  let released = false;
  async function* tracked(): AsyncGenerator<Buffer> {
    try {
      yield* lent();
    } finally {
      released = true; // where a file is closed, a spool reader ends, a levelled sender leaves its group
    }
  }
  const url = await serve(async (_req, reply) => {
    await sendChunks(reply, tracked(), log);
    return reply;
  });
  const req = get(url, (res) => {
    res.pause(); // writes back up behind full socket buffers, then the client goes
    void sleep(300).then(() => req.destroy());
  }).on('error', () => undefined);
  await waitFor('the source to be let go', () => released, { timeoutMs: 3000, intervalMs: 20 });
});
