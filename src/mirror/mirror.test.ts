// The mirror against test doubles of the peer data plane (real HTTP servers): failover, integrity, stalls, sharing.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { register } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { delayCommits } from '../store/conformance-kit.js';
import { MemoryStore } from '../store/memory-store.js';
import { StoreBusyError, StoreFullError } from '../store/store.js';
import { MAX_TRANSFERS, Mirror } from './mirror.js';
import { pullThrough, type UpstreamSource } from './pull-through.js';
import { LogRateLimiter } from '../util/log-rate-limiter.js';
import type { DataPlane } from '../dht/membership.js';
import { AUTH_HEADER, peerKey, ProofChecker } from './peer-auth.js';
import { PeerClient } from './peer-client.js';
import { Spools } from './spools.js';
import { run } from '../../test/helpers/run.js';

const key = peerKey(new TextEncoder().encode('test fleet'));
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const servers: Server[] = [];

type Handler = (req: IncomingMessage, res: ServerResponse, offset: number) => void;

interface Double extends DataPlane {
  requests: { offset: number; authorized: boolean }[];
}

async function peer(id: string, rttMs: number, handler: Handler): Promise<Double> {
  const requests: Double['requests'] = [];
  const proofs = new ProofChecker(key, id);
  const server = createServer((req, res) => {
    const offset = Number(/bytes=(\d+)-/.exec(req.headers.range ?? '')?.[1] ?? 0);
    requests.push({ offset, authorized: proofs.verify({ method: 'GET', path: req.url! }, req.headers[AUTH_HEADER] as string) });
    handler(req, res, offset);
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { id, rttMs, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

/** Serves `data` from the requested offset, as the real data plane does. */
const serves = (data: Buffer): Handler => (_req, res, offset) => {
  res.writeHead(offset ? 206 : 200, { 'content-length': data.length - offset });
  res.end(data.subarray(offset));
};

let spoolDir: string;
let spools: Spools;
beforeEach(async () => {
  spoolDir = await mkdtemp(join(tmpdir(), 'mirror-test-'));
  spools = await Spools.open(spoolDir);
});

function mirror(store: MemoryStore, peers: DataPlane[] | (() => DataPlane[]), stallTimeoutMs = 5000) {
  const list = typeof peers === 'function' ? peers : () => peers;
  return new Mirror({
    store, spools, members: { self: 'self', holders: async () => list(), dataPlaneOf: () => undefined }, peers: new PeerClient(key), log: pino({ level: 'silent' }),
    lookupTimeoutMs: 1000, stallTimeoutMs, resolveTags: true, clientCommitGraceMs: 200,
  });
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c);
  return Buffer.concat(chunks);
}

async function stored(store: MemoryStore, digest: string): Promise<Buffer | undefined> {
  if (!(await store.stat(digest))) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of (await store.open(digest)).stream) chunks.push(c);
  return Buffer.concat(chunks);
}

afterEach(async () => {
  await rm(spoolDir, { recursive: true, force: true });
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => {
    s.close(r);
    s.closeAllConnections();
  })));
});

describe('Mirror', () => {
  it('fetches from the nearest holder, signing its requests', async () => {
    const data = randomBytes(300_000);
    const far = await peer('far', 20, serves(data));
    const near = await peer('near', 2, serves(data));
    const store = new MemoryStore();
    expect(await mirror(store, [far, near]).fetch(sha(data)).stored).toBe(true);
    expect(near.requests).toEqual([{ offset: 0, authorized: true }]);
    expect(far.requests).toEqual([]);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
  });

  it('continues on another holder from the same byte when a peer dies mid-transfer', async () => {
    const data = randomBytes(2_000_000);
    const dying = await peer('dying', 1, (_req, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.write(data.subarray(0, 700_000), () => setTimeout(() => res.socket!.destroy(), 50));
    });
    const healthy = await peer('healthy', 5, serves(data));
    const store = new MemoryStore();
    expect(await mirror(store, [dying, healthy]).fetch(sha(data)).stored).toBe(true);
    expect(healthy.requests).toHaveLength(1);
    expect(healthy.requests[0].offset).toBeGreaterThan(0);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
  });

  it('never keeps wrong bytes, takes them from a correct holder instead, and trusts the liar last', async () => {
    const data = randomBytes(500_000);
    const corrupted = Buffer.from(data);
    corrupted[123_456] ^= 0xff;
    let peers = [await peer('liar', 1, serves(corrupted)), await peer('honest', 9, serves(data))];
    const store = new MemoryStore();
    const m = mirror(store, () => peers);
    expect(await m.fetch(sha(data)).stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
    // Next blob: the liar, though nearer, is asked after the honest peer.
    const next = randomBytes(1000);
    const [liar, honest] = [await peer('liar', 1, serves(next)), await peer('honest', 9, serves(next))];
    peers = [liar, honest];
    expect(await m.fetch(sha(next)).stored).toBe(true);
    expect(honest.requests).toHaveLength(1);
    expect(liar.requests).toHaveLength(0);
  });

  it('stores nothing when every holder sends wrong bytes', async () => {
    const data = randomBytes(10_000);
    const liar = await peer('liar', 1, serves(randomBytes(10_000)));
    const store = new MemoryStore();
    expect(await mirror(store, [liar]).fetch(sha(data)).stored).toBe(false);
    expect(await store.stat(sha(data))).toBeUndefined();
  });

  it('takes the blob from an honest holder after one whose copy is short (its size was wrong too)', async () => {
    const data = randomBytes(600_000);
    const short = await peer('short', 1, serves(data.subarray(0, 500_000)));
    const honest = await peer('honest', 9, serves(data));
    const store = new MemoryStore();
    const m = new Mirror({
      store, spools, peers: new PeerClient(key), log: pino({ level: 'silent' }),
      members: { self: 'self', holders: async () => [], dataPlaneOf: (id) => (id === 'short' ? short : id === 'honest' ? honest : undefined) },
      lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true, patienceMs: 0,
    });
    expect(await m.fetch(sha(data), { from: ['short', 'honest'], patient: true }).stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
    expect(honest.requests.length).toBeGreaterThan(0);
  });

  it('takes no more than a holder says the blob holds, however long it sends, then takes the blob from an honest holder', async () => {
    const data = randomBytes(10_000);
    let sent = 0;
    const endless = await peer('endless', 1, (_req, res) => {
      res.writeHead(200, { 'content-range': `bytes 0-${data.length - 1}/${data.length}` });
      const chunk = Buffer.alloc(64 << 10);
      const more = () => {
        while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        if (!res.destroyed) res.once('drain', more);
      };
      res.on('close', () => res.removeAllListeners('drain'));
      more();
    });
    const honest = await peer('honest', 9, serves(data));
    const store = new MemoryStore();
    expect(await mirror(store, [endless, honest]).fetch(sha(data)).stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
    expect(sent, 'the endless holder was cut off').toBeLessThan(16 << 20);
  });

  it('stores a replicated blob as it arrives, and nothing of wrong bytes', async () => {
    const data = randomBytes(600_000);
    const corrupted = Buffer.from(data);
    corrupted[599_999] ^= 0xff;
    const liar = await peer('liar', 1, serves(corrupted));
    // The honest holder sends half, pauses, then the rest: by then the store must have received bytes.
    let inStore = 0;
    let inStoreMidway = 0;
    const honest = await peer('honest', 9, (_req, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.write(data.subarray(0, 300_000));
      setTimeout(() => {
        inStoreMidway = inStore;
        res.end(data.subarray(300_000));
      }, 300);
    });
    const store = new MemoryStore();
    const begin = store.beginUpload.bind(store);
    store.beginUpload = async () => {
      const upload = await begin();
      const append = upload.append.bind(upload);
      upload.append = (source) => append((async function* () {
        for await (const chunk of source) {
          inStore += chunk.length;
          yield chunk;
        }
      })());
      return upload;
    };
    const m = new Mirror({
      store, spools, peers: new PeerClient(key), log: pino({ level: 'silent' }),
      members: { self: 'self', holders: async () => [], dataPlaneOf: (id) => (id === 'liar' ? liar : id === 'honest' ? honest : undefined) },
      lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true, patienceMs: 0,
    });
    expect(await m.fetch(sha(data), { from: ['liar'], patient: true }).stored).toBe(false);
    expect(await store.stat(sha(data))).toBeUndefined();
    expect(await m.fetch(sha(data), { from: ['liar', 'honest'], patient: true }).stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
    expect(inStoreMidway).toBeGreaterThan(0);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('ends a patient fetch at once when this node cannot write its spool (a full disk), instead of asking peers for minutes', async () => {
    const data = randomBytes(3 << 20);
    const holder = await peer('holder', 1, serves(data));
    const create = spools.create.bind(spools);
    spools.create = async (digest) => {
      const spool = await create(digest);
      const file = (spool as unknown as { file: { write: () => Promise<never> } }).file;
      file.write = async () => {
        throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      };
      return spool;
    };
    const m = new Mirror({
      store: new MemoryStore(), spools, peers: new PeerClient(key), log: pino({ level: 'silent' }),
      members: { self: 'self', holders: async () => [], dataPlaneOf: (id) => (id === 'holder' ? holder : undefined) },
      lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true, patienceMs: 20_000,
    });
    const started = Date.now();
    expect(await m.fetch(sha(data), { from: ['holder'], patient: true }).stored).toBe(false);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(holder.requests).toHaveLength(1);
  });

  it('lends a client\'s pull the holder and the patience of a replication that joins it', async () => {
    const data = randomBytes(300_000);
    const holder = await peer('holder', 1, serves(data));
    const store = new MemoryStore();
    const m = new Mirror({
      store, spools, peers: new PeerClient(key), log: pino({ level: 'silent' }),
      // The DHT knows no holder (yet), and takes a while to say so; replication knows whom to ask.
      members: { self: 'self', holders: async () => new Promise((r) => setTimeout(() => r([]), 300)), dataPlaneOf: (id) => (id === 'holder' ? holder : undefined) },
      lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true, patienceMs: 5_000,
    });
    const pull = m.fetch(sha(data));
    await new Promise((r) => setTimeout(r, 100));
    const copy = m.fetch(sha(data), { from: ['holder'], patient: true });
    expect(await copy.stored).toBe(true);
    expect(await pull.verified).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
  });

  it('answers "verified" before the store has committed, and "stored" once it has', async () => {
    const data = randomBytes(400_000);
    const holder = await peer('holder', 1, serves(data));
    const store = new MemoryStore();
    delayCommits(store, () => new Promise((r) => setTimeout(r, 300))); // a busy containerd
    const m = new Mirror({
      store, spools, peers: new PeerClient(key), log: pino({ level: 'silent' }),
      members: { self: 'self', holders: async () => [], dataPlaneOf: (id) => (id === 'holder' ? holder : undefined) },
      lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true,
    });
    const fetching = m.fetch(sha(data), { from: ['holder'], patient: true });
    expect(await fetching.verified).toBe(true);
    expect(await store.stat(sha(data))).toBeUndefined();
    expect(await fetching.stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
    expect(holder.requests).toHaveLength(1);
  });

  it('leaves a stalled peer for the next holder', async () => {
    const data = randomBytes(400_000);
    const stalled = await peer('stalled', 1, (_req, res) => {
      res.writeHead(200, { 'content-length': data.length });
      res.write(data.subarray(0, 100_000)); // and nothing more
    });
    const healthy = await peer('healthy', 5, serves(data));
    const store = new MemoryStore();
    const started = Date.now();
    expect(await mirror(store, [stalled, healthy], 300).fetch(sha(data)).stored).toBe(true);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(healthy.requests[0].offset).toBe(100_000);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
  });

  it('asks the next holder too when the nearest is slow to answer, and takes whichever answers first', async () => {
    const data = randomBytes(100_000);
    const slow = await peer('slow', 1, (req, res, offset) => setTimeout(() => !res.destroyed && serves(data)(req, res, offset), 3000));
    const quick = await peer('quick', 9, serves(data));
    const store = new MemoryStore();
    const started = Date.now();
    expect(await mirror(store, [slow, quick]).fetch(sha(data)).stored).toBe(true);
    // The default hedge delay is 300 ms: far sooner than the slow peer's 3 s.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(slow.requests).toHaveLength(1);
    expect(quick.requests).toHaveLength(1);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
  });

  it('streams a blob to every reader as it arrives from one transfer, and keeps it', async () => {
    const data = randomBytes(3_000_000);
    const holder = await peer('holder', 1, serves(data));
    const store = new MemoryStore();
    const m = mirror(store, [holder]);
    const [first, second] = await Promise.all([m.stream(sha(data)), m.stream(sha(data))]);
    expect(first?.size).toBe(data.length);
    expect(second?.size).toBe(data.length);
    const [a, b] = await Promise.all([readAll(first!.stream), readAll(second!.stream)]);
    expect(a.equals(data) && b.equals(data)).toBe(true);
    expect(holder.requests).toHaveLength(1);
    // Nobody else stored it, so after the grace the mirror keeps its own copy; the spool file is gone.
    expect(await m.fetch(sha(data)).stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('does not store a second copy of a blob the reading client stored itself', async () => {
    const data = randomBytes(500_000);
    const holder = await peer('holder', 1, serves(data));
    const store = new MemoryStore();
    const m = mirror(store, [holder]);
    const live = await m.stream(sha(data));
    // The client (think: this host's containerd) stores what it read, as a pull does.
    const upload = await store.beginUpload();
    await upload.append(live!.stream);
    await upload.commit({ digest: sha(data) });
    const commits: string[] = [];
    const beginUpload = store.beginUpload.bind(store);
    store.beginUpload = async () => {
      commits.push('mirror');
      return beginUpload();
    };
    expect(await m.fetch(sha(data)).stored).toBe(true);
    expect(commits).toEqual([]);
  });

  it('cuts a live response short when the bytes do not match, and keeps nothing', async () => {
    const data = randomBytes(1_000_000);
    const corrupted = Buffer.from(data);
    corrupted[999_000] ^= 1;
    const liar = await peer('liar', 1, serves(corrupted));
    const store = new MemoryStore();
    const live = await mirror(store, [liar]).stream(sha(data));
    if (!live) throw new Error('expected a live blob');
    let received = 0;
    await expect((async () => {
      for await (const c of live.stream) received += c.length;
    })()).rejects.toThrow(/did not match|ended/);
    expect(received).toBeLessThan(data.length);
    expect(await store.stat(sha(data))).toBeUndefined();
  });

  it('fetches the blob on the next request after the store could not be asked whether it held it (containerd restarting)', async () => {
    const data = randomBytes(100_000);
    const holder = await peer('holder', 1, serves(data));
    const store = new MemoryStore();
    const stat = store.stat.bind(store);
    let failures = 1;
    store.stat = async (digest) => {
      if (failures-- > 0) throw new Error('containerd: unavailable');
      return stat(digest);
    };
    const m = mirror(store, [holder]);
    expect(await m.fetch(sha(data)).stored).toBe(false);
    expect(await m.fetch(sha(data)).stored).toBe(true);
    expect(await readdir(spoolDir)).toEqual([]);
  });

  it('counts a client\'s request once, where it was found, also when storing the blob then fails', async () => {
    const data = randomBytes(100_000);
    const holder = await peer('holder', 1, serves(data));
    const store = new MemoryStore();
    store.beginUpload = async () => {
      throw new Error('no space left on the device');
    };
    const total = async () => (await register.getSingleMetric('layermesh_mirror_requests_total')!.get()).values.reduce((n, v) => n + v.value, 0);
    const before = await total();
    const m = mirror(store, [holder]);
    const live = await m.stream(sha(data), { repo: 'docker.io/library/app' });
    expect((await readAll(live!.stream)).equals(data)).toBe(true);
    expect(await m.fetch(sha(data)).stored).toBe(false); // joins the transfer until its store's copy failed (nobody's request, uncounted)
    expect(await total()).toBe(before + 1);
  });

  it('starts no new transfer for a client past the bound: a reader asking for digests nobody has cannot hold without end', async () => {
    const m = new Mirror({
      store: new MemoryStore(), spools, peers: new PeerClient(key), log: pino({ level: 'silent' }), lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true,
      members: { self: 'self', holders: () => new Promise((r) => setTimeout(() => r([]), 300)), dataPlaneOf: () => undefined },
    });
    const asked = Array.from({ length: MAX_TRANSFERS }, () => m.stream(sha(randomBytes(8))));
    await expect(m.stream(sha(randomBytes(8)))).rejects.toThrow(StoreBusyError);
    expect(await Promise.all(asked)).toEqual(asked.map(() => undefined));
    // Room again once those transfers have ended (each a moment after its answer).
    await expect.poll(() => m.stream(sha(randomBytes(8))).then(() => 'room', (err: Error) => err.name), { timeout: 5_000 }).toBe('room');
  });

  it('says before the answer begins that a blob does not fit in the spool directory (a full disk), and writes none of it', async () => {
    const small = await mkdtemp(join(tmpdir(), 'mirror-small-'));
    await run('mount', ['-t', 'tmpfs', '-o', 'size=4m', 'tmpfs', small]);
    try {
      /** A mirror spooling on the 4 MiB tmpfs, the holders given, and the reasons its transfers failed. */
      const mirrorOn = async (dir: string, holders: DataPlane[], upstream?: UpstreamSource) => {
        const errors: string[] = [];
        const log = pino({ level: 'error' }, { write: (line: string) => void errors.push(String(JSON.parse(line).err?.message)) });
        return { errors, m: new Mirror({
          store: new MemoryStore(), spools: await Spools.open(join(small, dir)), peers: new PeerClient(key), log, upstream,
          members: { self: 'self', holders: async () => holders, dataPlaneOf: () => undefined }, lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true,
        }) };
      };
      const noRoom = [expect.stringMatching(/no room for its 6291456 bytes/)];
      const data = randomBytes(6 << 20);
      const big = await mirrorOn('spool', [await peer('holder', 1, serves(data))]);
      await expect(big.m.stream(sha(data))).rejects.toThrow(StoreFullError);
      // The transfer itself stopped at its first answer: it did not fill the disk for everyone else meanwhile.
      await expect.poll(() => big.errors, { timeout: 5_000 }).toEqual(noRoom);
      // Nor replication, in stripes or not, nor a pull-through from the upstream.
      const striped = await mirrorOn('spool-lanes', []);
      expect(await striped.m.fetch(sha(data), { patient: true, lanes: { size: data.length, lanes: [] } }).stored).toBe(false);
      expect(striped.errors).toEqual(noRoom);
      const pulled = await mirrorOn('spool-upstream', [], { resolveTag: async () => undefined, open: async () => ({ size: data.length, body: (async function* () { yield data; })(), cancel: () => undefined }) });
      expect(await pulled.m.stream(sha(data), { repo: 'docker.io/library/app' })).toBeUndefined();
      await expect.poll(() => pulled.errors, { timeout: 5_000 }).toEqual(noRoom);

      const fits = randomBytes(1 << 20);
      const other = await mirrorOn('spool2', [await peer('other', 1, serves(fits))]);
      expect((await readAll((await other.m.stream(sha(fits)))!.stream)).equals(fits)).toBe(true);
    } finally {
      await run('umount', ['-l', small]);
      await rm(small, { recursive: true, force: true });
    }
  });

  it('answers undefined at once when nobody holds the blob', async () => {
    expect(await mirror(new MemoryStore(), []).stream(sha(randomBytes(10)))).toBeUndefined();
  });

  it('shares one transfer between concurrent requests for a blob', async () => {
    const data = randomBytes(200_000);
    const holder = await peer('holder', 1, (req, res, offset) => setTimeout(() => serves(data)(req, res, offset), 100));
    const store = new MemoryStore();
    const m = mirror(store, [holder]);
    expect(await Promise.all([m.fetch(sha(data)).stored, m.fetch(sha(data)).stored, m.fetch(sha(data)).stored])).toEqual([true, true, true]);
    expect(holder.requests).toHaveLength(1);
  });
});

describe('Mirror with an upstream', () => {
  /** An upstream double serving `data` (or `served`, to lie) for one digest, counting the requests. */
  function upstream(data: Buffer, served = data, stated?: number) {
    const opened: { repo: string; digest: string; manifest: boolean }[] = [];
    let cancelled = 0;
    let read = 0;
    const source: UpstreamSource = {
      resolveTag: async () => undefined,
      open: async (repo, digest, manifest) => {
        opened.push({ repo, digest, manifest });
        if (digest !== sha(data)) return undefined;
        return {
          size: stated ?? served.length,
          body: (async function* () { for (let i = 0; i < served.length; i += 65536) { await new Promise((r) => setImmediate(r)); read++; yield served.subarray(i, i + 65536); } })(),
          cancel: () => void cancelled++,
        };
      },
    };
    return { source, opened, cancelled: () => cancelled, read: () => read };
  }
  const withUpstream = (store: MemoryStore, source: UpstreamSource, peers: DataPlane[] = [], with_ = { spools }) => new Mirror({
    store, spools: with_.spools, members: { self: 'self', holders: async () => peers, dataPlaneOf: () => undefined }, peers: new PeerClient(key), log: pino({ level: 'silent' }),
    lookupTimeoutMs: 1000, stallTimeoutMs: 5000, resolveTags: true, clientCommitGraceMs: 50, upstream: source,
  });
  const origin = { repo: 'docker.io/library/app' };

  it('asks the mesh first and the upstream only when no peer has it', async () => {
    const data = randomBytes(100_000);
    const up = upstream(data);
    const store = new MemoryStore();
    expect(await withUpstream(store, up.source, [await peer('p', 1, serves(data))]).fetch(sha(data), { requestedIn: origin }).stored).toBe(true);
    expect(up.opened).toEqual([]);
    const other = new MemoryStore();
    expect(await withUpstream(other, up.source).fetch(sha(data), { requestedIn: origin }).stored).toBe(true);
    expect(up.opened).toEqual([{ repo: 'docker.io/library/app', digest: sha(data), manifest: false }]);
    expect((await stored(other, sha(data)))!.equals(data)).toBe(true);
  });

  it('shares one upstream transfer between concurrent readers and keeps the blob', async () => {
    const data = randomBytes(1_500_000);
    const up = upstream(data);
    const store = new MemoryStore();
    const m = withUpstream(store, up.source);
    const [a, b] = await Promise.all([m.stream(sha(data), origin), m.stream(sha(data), origin)]);
    const [ra, rb] = await Promise.all([readAll(a!.stream), readAll(b!.stream)]);
    expect(ra.equals(data) && rb.equals(data)).toBe(true);
    expect(up.opened).toHaveLength(1);
    expect(await m.fetch(sha(data), { requestedIn: origin }).stored).toBe(true);
    expect((await stored(store, sha(data)))!.equals(data)).toBe(true);
  });

  it('asks the upstream in the repository of another client that joined when the first client\'s cannot give the blob', async () => {
    const data = randomBytes(300_000);
    const up = upstream(data);
    const open = up.source.open;
    up.source.open = (repo, digest, manifest) => {
      if (repo !== 'docker.io/private/app') return open(repo, digest, manifest);
      up.opened.push({ repo, digest, manifest });
      return Promise.resolve(undefined);
    };
    const m = withUpstream(new MemoryStore(), up.source);
    const [refused, allowed] = await Promise.all([
      m.stream(sha(data), { repo: 'docker.io/private/app' }), // its token does not cover it, say
      m.stream(sha(data), origin),
    ]);
    const [a, b] = await Promise.all([readAll(refused!.stream), readAll(allowed!.stream)]);
    expect(a.equals(data) && b.equals(data)).toBe(true);
    expect(up.opened.map((o) => o.repo)).toEqual(['docker.io/private/app', 'docker.io/library/app']);

    // An upstream that cannot be reached is not asked again for the next client's repository (each waits its timeout).
    const other = randomBytes(1000);
    const asked: string[] = [];
    const unreachable: UpstreamSource = { resolveTag: async () => undefined, open: async (repo) => { asked.push(repo); throw new Error('no route to host'); } };
    const n = withUpstream(new MemoryStore(), unreachable);
    const both = await Promise.all([n.stream(sha(other), { repo: 'docker.io/a/app' }), n.stream(sha(other), origin)]);
    expect(both).toEqual([undefined, undefined]);
    expect(asked).toEqual(['docker.io/a/app']);
  });

  it('never completes a response of wrong upstream bytes and keeps nothing', async () => {
    const data = randomBytes(300_000);
    const wrong = Buffer.from(data);
    wrong[wrong.length - 1] ^= 0xff;
    const store = new MemoryStore();
    const live = await withUpstream(store, upstream(data, wrong).source).stream(sha(data), origin);
    await expect(readAll(live!.stream)).rejects.toThrow();
    expect(await store.stat(sha(data))).toBeUndefined();
  });

  it('warns of an upstream sending wrong bytes once a minute, not at each of the requests a local reader can make', async () => {
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l).msg) });
    const failures = new LogRateLimiter();
    for (let i = 0; i < 5; i++) {
      const data = randomBytes(1000);
      const spool = await spools.create(sha(data));
      expect(await pullThrough(spool, upstream(data, randomBytes(1000)).source, () => [origin], { log, failures, room: async () => undefined })).toBe(false);
      await spools.remove(spool);
    }
    expect(lines).toEqual(['the upstream registry sent bytes that do not match the digest']);
  });

  it('refuses a blob the upstream says is larger than this node takes before reading a byte, and lets the connection go', async () => {
    const data = randomBytes(1000);
    const up = upstream(data, data, 64 * 2 ** 30);
    const dir = join(spoolDir, 'small'); // removed with the test's spools
    const m = withUpstream(new MemoryStore(), up.source, [], { spools: await Spools.open(dir, 1 << 20) });
    expect(await m.fetch(sha(data), { requestedIn: origin }).stored).toBe(false);
    expect(up.cancelled()).toBe(1);
    expect(up.read(), 'chunks of its body read').toBe(0);
    expect(await readdir(dir)).toEqual([]);
  });

  it('does not ask the upstream without an origin (replication)', async () => {
    const data = randomBytes(1000);
    const up = upstream(data);
    expect(await withUpstream(new MemoryStore(), up.source).fetch(sha(data)).stored).toBe(false);
    expect(up.opened).toEqual([]);
  });
});
