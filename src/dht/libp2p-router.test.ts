// Real libp2p nodes on loopback tcp, in this process.
import '../polyfill.js';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromString } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { GOSSIP_HEARTBEAT_MS, createMeshNode, type MeshNode } from './libp2p-node.js';
import { Libp2pRouter } from './libp2p-router.js';
import { keyToCid } from './kad-keys.js';
import { EVENTS_TOPIC } from './mesh-events.js';
import type { ProviderStore } from './provide-protocol.js';
import type { GossipEvent, MeshEvent, PeerRef } from './router.js';
import { generateSwarmKey, parseSwarmKey } from './swarm-key.js';

const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
const TTL_MS = 3_000;

interface Member {
  name: string;
  node: MeshNode;
  router: Libp2pRouter;
  events: Array<{ event: GossipEvent; from: string }>;
}

const members: Member[] = [];

interface MemberOptions {
  swarmKey?: Uint8Array;
  bootstrap?: string[];
  privateKey?: PrivateKey;
  listen?: string;
  batchProtocol?: boolean;
  republishIntervalMs?: number;
}

async function member(name: string, opts: MemberOptions): Promise<Member> {
  const node = await createMeshNode({
    privateKey: opts.privateKey ?? (await generateKeyPair('Ed25519')),
    listen: [opts.listen ?? '/ip4/127.0.0.1/tcp/0'],
    bootstrap: opts.bootstrap ?? [],
    mdns: false,
    swarmKey: opts.swarmKey,
    logger: logger.child({ node: name }),
    recordTtlMs: TTL_MS,
    bootstrapIntervalMs: 200,
  });
  const router = await Libp2pRouter.create({
    node,
    nodeInfo: { name, labels: { role: 'test' }, dataPlanePort: 5001 },
    logger: logger.child({ node: name }),
    republishIntervalMs: opts.republishIntervalMs ?? 1_000,
    lookupTimeoutMs: 1_000,
    batchProtocol: opts.batchProtocol,
  });
  const m: Member = { name, node, router, events: [] };
  router.onEvent((event, from) => m.events.push({ event, from }));
  members.push(m);
  return m;
}

async function stop(m: Member): Promise<void> {
  members.splice(members.indexOf(m), 1);
  await m.router.stop();
}

const addrsOf = (m: Member): string[] => m.node.libp2p.getMultiaddrs().map(String);
const connected = (a: Member, b: Member): boolean => a.node.libp2p.getConnections(peerIdFromString(b.router.id)).length > 0;

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function providers(m: Member, key: string): Promise<PeerRef[]> {
  const found: PeerRef[] = [];
  for await (const p of m.router.findProviders(key)) found.push(p);
  return found;
}

/** Whether `m`'s own kad-dht provider store (no network) holds `provider`'s record for `key`. */
async function storesRecord(m: Member, key: string, provider: Member): Promise<boolean> {
  const store = (m.node.libp2p.services.dht as unknown as { providers: ProviderStore }).providers;
  return (await store.getProviders(keyToCid(key))).some((p) => p.toString() === provider.router.id);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const DIGEST = `sha256:${'ab'.repeat(32)}`;
const TAG = 'docker.io/library/app:1';
const event = (m: Member, n: number): MeshEvent => ({ type: 'image-pushed', image: `docker.io/library/app:${n}`, digest: DIGEST, node: m.router.id, clock: n });

afterAll(async () => {
  await Promise.allSettled(members.map((m) => m.router.stop()));
});

describe('a mesh of four members', () => {
  const swarmKey = parseSwarmKey(generateSwarmKey());
  let a: Member, b: Member, c: Member, d: Member;

  beforeAll(async () => {
    a = await member('a', { swarmKey });
    [b, c, d] = await Promise.all(['b', 'c', 'd'].map((n) => member(n, { swarmKey, bootstrap: addrsOf(a) })));
    await until('a identified everyone', () => a.router.peers().filter((p) => p.info !== undefined).length === 3);
  });

  test('keys announced by one member are found by another, with its addresses', async () => {
    a.router.announce({ add: [DIGEST, TAG] });
    await a.router.settled();
    for (const key of [DIGEST, TAG]) {
      const found = await providers(c, key);
      expect(found.map((p) => p.id)).toEqual([a.router.id]);
      expect(found[0].addrs).toEqual(expect.arrayContaining([expect.stringMatching(/^\/ip4\/127\.0\.0\.1\/tcp\/\d+/)]));
    }
    expect((await providers(a, TAG)).map((p) => p.id)).toEqual([a.router.id]); // self included when held
  });

  test('every member stores the records (fewer than k members), also when sent as ADD_PROVIDER messages', async () => {
    // A peer a had not identified yet when it announced gets the records in a catch-up round.
    const storedByAll = async (ms: Member[], key: string, provider: Member) =>
      (await Promise.all(ms.map((m) => storesRecord(m, key, provider)))).every(Boolean);
    await until('b, c and d store a\'s record', () => storedByAll([b, c, d], DIGEST, a));
    const e = await member('e', { swarmKey, bootstrap: addrsOf(a), batchProtocol: false });
    await until('e connected to a', () => connected(e, a));
    e.router.announce({ add: ['docker.io/library/e:1'] });
    await e.router.settled();
    await until('everyone stores e\'s record', () => storedByAll([a, b, c, d], 'docker.io/library/e:1', e));
    await stop(e);
  });

  test('a burst of keys goes out in batches further and further apart, an image name at once', async () => {
    // A replication adds a key as each layer lands; every batch is a request to each peer.
    const batches = vi.spyOn(d.router as unknown as { runBatch(): Promise<void> }, 'runBatch');
    const keys = Array.from({ length: 60 }, (_, i) => `sha256:${i.toString(16).padStart(64, 'e')}`);
    for (const key of keys) {
      d.router.announce({ add: [key] });
      await sleep(100);
    }
    // 6 s of keys: batches at 0, 1, 3 and 7 s (a batch a second would be 6 or 7).
    expect(batches.mock.calls.length).toBeLessThanOrEqual(4);
    // From the batch at 7 s on, the gap is 8 s: a key added now would wait that long, an image name goes at once.
    await until('the batch due 7 s after the first', () => batches.mock.calls.length === 4);
    const started = Date.now();
    d.router.announce({ add: ['docker.io/library/burst:1'], urgent: true });
    await until('b to store the image name', () => storesRecord(b, 'docker.io/library/burst:1', d));
    expect(Date.now() - started).toBeLessThan(4_000);
    await until('b to store every key of the burst', async () => (await Promise.all(keys.map((k) => storesRecord(b, k, d)))).every(Boolean));
    batches.mockRestore();
  });

  test('a wall clock set back an hour holds no announcement back', async () => {
    // Two members that republish only every 10 minutes: a record arrives by its own batch or not at all.
    const e = await member('e', { swarmKey, republishIntervalMs: 600_000 });
    const f = await member('f', { swarmKey, bootstrap: addrsOf(e), republishIntervalMs: 600_000 });
    try {
      await until('e and f connected', () => connected(e, f));
      const first = `sha256:${'1'.repeat(64)}`;
      f.router.announce({ add: [first] });
      await until('e to store the first key', () => storesRecord(e, first, f), 12_000);
      const now = Date.now.bind(Date);
      const setBack = vi.spyOn(Date, 'now').mockImplementation(() => now() - 3_600_000);
      try {
        const next = `sha256:${'2'.repeat(64)}`;
        f.router.announce({ add: [next] });
        await until('e to store the key announced after the clock went back', () => storesRecord(e, next, f), 12_000);
      } finally {
        setBack.mockRestore();
      }
    } finally {
      await Promise.all([stop(e), stop(f)]);
    }
  });

  test('with fewer than k members every record is stored here too, so lookups ask no peer', async () => {
    a.router.announce({ add: [DIGEST] });
    await a.router.settled();
    await until('c stores a\'s record', () => storesRecord(c, DIGEST, a));
    // A whole walk of the DHT (the view's, as at start) shows c fewer than k peers, all connected to it for
    // longer than their catch-up batches take; until then (a peer just joined) lookups still ask the network.
    const view = (c.router as unknown as { view: { peers(signal: AbortSignal, fresh: boolean): Promise<unknown>; holdsEveryRecord(): boolean } }).view;
    await view.peers(AbortSignal.timeout(5_000), true);
    await until('c connected to everyone for the catch-up time', () => view.holdsEveryRecord(), 15_000);
    const walk = vi.spyOn(c.node.libp2p.services.dht, 'findProviders');
    try {
      expect((await providers(c, DIGEST)).map((p) => p.id)).toEqual([a.router.id]);
      expect(await providers(c, 'sha256:' + '01'.repeat(32))).toEqual([]);
      expect(walk).not.toHaveBeenCalled();
    } finally {
      walk.mockRestore();
    }
  });

  test('a lookup of a key nobody holds ends with nothing, within the lookup timeout', async () => {
    const started = Date.now();
    expect(await providers(d, 'sha256:' + '00'.repeat(32))).toEqual([]);
    // Usually 20-250 ms (the DHT walk ends); never much beyond the 1 s timeout, even on a loaded machine.
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  test('removed keys expire after the record TTL while held keys survive republishing', async () => {
    const gone = 'docker.io/library/gone:1';
    const kept = 'docker.io/library/kept:1';
    b.router.announce({ add: [gone, kept] });
    await b.router.settled();
    await until('both keys findable from c', async () => (await providers(c, gone)).length === 1 && (await providers(c, kept)).length === 1);
    b.router.announce({ remove: [gone] });
    await b.router.settled();
    expect(await providers(b, gone)).toEqual([]); // b no longer names itself, though peers still do
    await sleep(TTL_MS * 1.5 + 500); // records expire after the TTL, dropped by the next cleanup pass
    expect(await providers(c, gone)).toEqual([]);
    expect(await providers(d, gone)).toEqual([]);
    expect((await providers(c, kept)).map((p) => p.id)).toEqual([b.router.id]);
    expect((await providers(d, kept)).map((p) => p.id)).toEqual([b.router.id]);
  });

  test('members tell each other their NodeInfo, and RTTs are known', async () => {
    await until('a knows everyone\'s info', () => a.router.peers().filter((p) => p.info !== undefined).length >= 3);
    const peerB = a.router.peers().find((p) => p.id === b.router.id)!;
    expect(peerB.info).toEqual({ name: 'b', labels: { role: 'test' }, dataPlanePort: 5001 });
    expect(peerB.rttMs).toBeTypeOf('number');
    expect(peerB.addrs.length).toBeGreaterThan(0);
  });

  test('outsiders with another swarm key, or none, cannot connect or hear gossip', async () => {
    const other = await member('other-key', { swarmKey: parseSwarmKey(generateSwarmKey()), bootstrap: addrsOf(a) });
    const none = await member('no-key', { bootstrap: addrsOf(a) });
    // Let their bootstrap dialers try several times.
    await sleep(1_500);
    await a.router.publish(event(a, 1));
    await until('b, c and d received the event', () => [b, c, d].every((m) => m.events.some((e) => e.event.image.endsWith(':1'))));
    for (const outsider of [other, none]) {
      expect(outsider.node.libp2p.getConnections()).toEqual([]);
      expect(connected(a, outsider)).toBe(false);
      expect(outsider.events).toEqual([]);
      const started = Date.now();
      expect(await providers(outsider, DIGEST)).toEqual([]); // alone: answered at once, from its own store
      expect(Date.now() - started).toBeLessThan(500);
    }
    expect(b.events.find((e) => e.event.image.endsWith(':1'))).toEqual({ event: event(a, 1), from: a.router.id });
    expect(a.events).toEqual([]); // own events are not delivered back
    await Promise.all([stop(other), stop(none)]);
  });

  test('malformed events, and events naming another node, are rejected', async () => {
    const pubsub = b.node.libp2p.services.pubsub;
    const before = a.events.length;
    // Twenty: a's score of b is recomputed once per heartbeat (5 s), and one or two rejections may have decayed to
    // nothing by then (the counters decay every 5 s, mesh-events.ts); twenty outlast one decay.
    for (let i = 0; i < 20; i++) await pubsub.publish(EVENTS_TOPIC, new TextEncoder().encode(`not json ${i}`));
    await pubsub.publish(EVENTS_TOPIC, new TextEncoder().encode(JSON.stringify(event(c, 2)))); // claims to be c
    await expect(b.router.publish(event(c, 3))).rejects.toThrow(/cannot publish an event for node/);
    await b.router.publish(event(b, 4));
    await until('the valid event arrived', () => a.events.some((e) => e.event.image.endsWith(':4')));
    expect(a.events.slice(before).map((e) => e.event)).toEqual([event(b, 4)]);
    // Rejection (not mere ignoring) costs the sender gossipsub score (recomputed every heartbeat).
    const pubsubA = a.node.libp2p.services.pubsub as unknown as { getScore(id: string): number };
    await until('b scored down by a', () => pubsubA.getScore(b.router.id) < 0, GOSSIP_HEARTBEAT_MS + 3_000);
  });
});

describe('bootstrap', () => {
  afterEach(async () => {
    await Promise.allSettled(members.map((m) => stop(m)));
  });

  test('a bootstrap peer that restarts is reconnected, and gets the records back', async () => {
    const swarmKey = parseSwarmKey(generateSwarmKey());
    const key = await generateKeyPair('Ed25519');
    let x = await member('x', { swarmKey, privateKey: key });
    const listen = addrsOf(x)[0].replace(/\/p2p\/.*$/, '');
    const y = await member('y', { swarmKey, bootstrap: addrsOf(x) });
    await until('y connected to x', () => connected(y, x));
    y.router.announce({ add: [DIGEST] });
    await y.router.settled();

    await stop(x);
    await until('y noticed x is gone', () => !connected(y, x));
    x = await member('x', { swarmKey, privateKey: key, listen });
    await until('y reconnected to x', () => connected(y, x));
    // x lost its records with its memory; y's catch-up round sends them again.
    await until('x stores y\'s record again', () => storesRecord(x, DIGEST, y));
    expect((await providers(x, DIGEST)).map((p) => p.id)).toEqual([y.router.id]);
  });
});
