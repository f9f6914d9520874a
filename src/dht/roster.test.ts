// Real libp2p nodes on loopback tcp, each allowed fewer connections than the fleet has members.
import '../polyfill.js';
import { afterEach, describe, expect, test } from 'vitest';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { createMeshNode, type MeshNode } from './libp2p-node.js';
import { Libp2pRouter } from './libp2p-router.js';
import { MEMBERS_PROTOCOL, MEMBERS_TOPIC } from './roster-messages.js';
import { serveJson } from './json-protocol.js';
import { INFO_PROTOCOL } from './peer-directory.js';
import { waitFor } from '../../test/helpers/wait.js';
import { CODE_P2P } from '@multiformats/multiaddr';
import type { StreamHandlerRecord } from '@libp2p/interface';
import { createServer, type AddressInfo, type Socket } from 'node:net';

const IDENTIFY_PROTOCOL = '/ipfs/id/1.0.0';
const logger = pino({ level: process.env.TEST_LOG ?? 'silent' });
interface Member {
  router: Libp2pRouter;
  node: MeshNode;
  id: string;
}
const members: Member[] = [];

async function member(name: string, bootstrap: Array<Pick<Member, 'node'>>, opts: { periodMs?: number; maxConnections?: number } = {}): Promise<Member> {
  const node = await createMeshNode({
    privateKey: await generateKeyPair('Ed25519'),
    listen: ['/ip4/127.0.0.1/tcp/0'],
    bootstrap: bootstrap.flatMap((b) => b.node.libp2p.getMultiaddrs().map(String)),
    mdns: false,
    logger: logger.child({ node: name }),
    recordTtlMs: 60_000,
    bootstrapIntervalMs: 200,
    maxConnections: opts.maxConnections ?? 3,
  });
  const router = await Libp2pRouter.create({
    node,
    nodeInfo: { name, labels: { n: name }, dataPlanePort: 5001 },
    logger: logger.child({ node: name }),
    roster: { periodMs: opts.periodMs ?? 1_000 },
  });
  const m = { router, node, id: router.id };
  members.push(m);
  return m;
}

const names = (m: Member): string[] => m.router.peers().flatMap((p) => (p.info ? [p.info.name] : [])).sort();

const nodes: MeshNode[] = [];

/** A libp2p node of the mesh without a roster: it gossips nothing, lists nobody and tells no NodeInfo unless told to. */
async function bareNode(): Promise<MeshNode> {
  const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, logger, recordTtlMs: 60_000 });
  nodes.push(node);
  return node;
}

type Opener = { openConnection(target: unknown, opts?: unknown): Promise<unknown> };
/** The peer a dial is for: a PeerId, or a multiaddr (or a list of them) ending in /p2p/<id>. */
const peerOf = (target: unknown): string => String(Array.isArray(target) ? target[0] : target).split('/p2p/').pop()!;

/** Fails every dial from `node`, and every dial to it from `others`, until end(): a network that lost `node`. */
function cutOff(node: Member, others: Member[]): { end(): void } {
  const restores = [node, ...others].map((m) => {
    const opener = (m.node.libp2p as unknown as { components: { connectionManager: Opener } }).components.connectionManager;
    const open = opener.openConnection;
    opener.openConnection = async function (target, opts) {
      if (m === node || peerOf(target) === node.id) throw new Error('cut off');
      return open.call(this, target, opts);
    };
    return () => void (opener.openConnection = open);
  });
  return { end: () => restores.forEach((restore) => restore()) };
}

afterEach(async () => {
  await Promise.allSettled([...members.splice(0).map((m) => m.router.stop()), ...nodes.splice(0).map((n) => n.stop())]);
});

describe('the roster', () => {
  test('every member of eight knows all the others, with their NodeInfo, also those it hangs up on', async () => {
    const a = await member('a', []);
    const others = [a];
    for (const n of 'bcdefgh') others.push(await member(n, [others[others.length - 1]]));
    const all = others.map((r) => r.id);
    for (const r of others) {
      await waitFor(`${names(r).length} members known to one node`, () => names(r).length === 7, { timeoutMs: 40_000 });
      expect(r.router.peers().map((p) => p.id).sort()).toEqual(all.filter((id) => id !== r.id).sort());
    }
    // Closed connections do not make members gone: the peers hear h's GoAway, and h dials each one again to check.
    const h = others[7];
    await Promise.all(others.slice(0, 7).map((o) => h.node.libp2p.hangUp(o.node.libp2p.peerId)));
    await new Promise((r) => setTimeout(r, 1_500));
    expect(names(h)).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g']);
    const far = h.router.peers().find((p) => p.info?.name === 'a')!;
    expect(far.info).toEqual({ name: 'a', labels: { n: 'a' }, dataPlanePort: 5001 });
    expect(far.addrs.some((addr) => addr.startsWith('/ip4/127.0.0.1/tcp/'))).toBe(true);
  });

  test('members connected to every member they know announce nothing after joining', async () => {
    const a = await member('a', []);
    const b = await member('b', [a]);
    const c = await member('c', [a]);
    await waitFor('everyone knows everyone', () => [a, b, c].every((r) => names(r).length === 2));
    await waitFor('all connected', () => [a, b, c].every((r) => r.node.libp2p.getPeers().length === 2));
    let heard = 0;
    a.node.libp2p.services.pubsub.addEventListener('message', (evt) => void (evt.detail.topic === MEMBERS_TOPIC && heard++));
    await new Promise((r) => setTimeout(r, 4_000)); // periods of 1–1.1 s
    expect(heard).toBe(0);
    expect(names(a)).toEqual(['b', 'c']);
  });

  test('a node cut off meets, once back, the members that joined meanwhile', async () => {
    const a = await member('a', []);
    const c = await member('c', [a]);
    const b = await member('b', []); // joins later, while c is cut off
    await waitFor('a and c connected', () => names(a).includes('c') && names(c).includes('a'));
    const cut = cutOff(c, [a, b]);
    try {
      c.node.libp2p.getConnections().forEach((conn) => conn.abort(new Error('cut off'))); // no GoAway: lost
      await waitFor('a and c to drop each other', () => names(a).length === 0 && names(c).length === 0, { timeoutMs: 10_000 });
      await b.node.libp2p.dial(a.node.libp2p.getMultiaddrs()); // a's list no longer has c
      await waitFor('b to know a', () => names(b).includes('a'));
      await new Promise((r) => setTimeout(r, 6_000)); // past b's second list (5 s after its first), not its third (30 s)
    } finally {
      cut.end();
    }
    // As c's bootstrap dialer would at its next try. a knows everyone and is connected to all: it announces nothing.
    await c.node.libp2p.dial(a.node.libp2p.getMultiaddrs());
    await waitFor('b and c to see each other', () => names(b).includes('c') && names(c).includes('b'), { timeoutMs: 5_000 });
  });

  test('a joining node learns the members from its first peer, before anyone announces again', async () => {
    const slow = { periodMs: 600_000, maxConnections: 64 };
    const a = await member('a', [], slow);
    const b = await member('b', [a], slow);
    const c = await member('c', [b], slow);
    await waitFor('a, b and c know each other', () => [a, b, c].every((r) => names(r).length === 2));
    await a.node.libp2p.hangUp(c.node.libp2p.peerId); // d joins through a, which c is no longer connected to
    const d = await member('d', [a], { ...slow, maxConnections: 1 });
    await waitFor('d knows a, b and c', () => names(d).join() === 'a,b,c', { timeoutMs: 10_000 });
  });

  test('a member that stops says so and is dropped by everyone at once', async () => {
    const slow = { periodMs: 60_000 }; // expiry takes minutes: only the leave can drop d in time
    const a = await member('a', [], slow);
    const b = await member('b', [a], slow);
    const c = await member('c', [b], slow);
    const d = await member('d', [c], slow);
    await waitFor('everyone knows everyone', () => [a, b, c, d].every((r) => names(r).length === 3));
    await d.router.stop();
    members.splice(members.indexOf(d), 1);
    for (const r of [a, b, c]) await waitFor('d dropped', () => !names(r).includes('d'), { timeoutMs: 5_000, intervalMs: 20 });
  });

  test('a member whose connections are lost as soon as dialed, then cannot be dialed, is dropped after a few tries, not dialed for ever', async () => {
    const a = await member('a', [], { periodMs: 60_000 });
    const b = await member('b', [a], { periodMs: 60_000 });
    await waitFor('a and b know each other', () => names(a).includes('b') && names(b).includes('a'));
    // b crashes as it starts, twice (a's dials "succeed", with no connection left), then is gone.
    const libp2p = a.node.libp2p as unknown as { dial: (...args: unknown[]) => Promise<unknown> };
    let dials = 0;
    libp2p.dial = async () => {
      if (++dials <= 2) return undefined;
      throw new Error('connection refused');
    };
    const cut = cutOff(a, [b]);
    try {
      await a.node.libp2p.hangUp(b.node.libp2p.peerId);
      await waitFor('b dropped by a', () => !names(a).includes('b'), { timeoutMs: 10_000, intervalMs: 20 });
      await new Promise((r) => setTimeout(r, 1_000));
      expect(dials).toBeLessThanOrEqual(3);
    } finally {
      cut.end();
    }
  });

  test('a member heard of but never connected to, which goes silent, is dropped after a few periods', async () => {
    // e knows a member nobody else does, and gives it to d, which joins through e.
    const e = await bareNode();
    const silent = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    await serveJson(e.libp2p, MEMBERS_PROTOCOL, () => [{ id: silent, info: { name: 'x', labels: {}, dataPlanePort: 1 }, addrs: ['/ip4/127.0.0.1/tcp/9'], ageMs: 0 }]);
    const d = await member('d', [{ node: e }]);
    await waitFor('d lists x', () => names(d).includes('x'), { timeoutMs: 5_000 });
    const listedAt = Date.now();
    await waitFor('x dropped', () => !names(d).includes('x'), { timeoutMs: 20_000 });
    expect(Date.now() - listedAt).toBeGreaterThan(3_000); // 4 periods of at least 1 s
  });

  test('a member dropped is not brought back by a list that heard of it before', async () => {
    // e, which gives its NodeInfo like a member, lists c as heard of when the test began; d joins through e.
    const c = await member('c', []);
    const e = await bareNode();
    const began = Date.now();
    const addrs = c.node.libp2p.getMultiaddrs().map((ma) => ma.decapsulateCode(CODE_P2P).toString());
    let lists = 0;
    await serveJson(e.libp2p, MEMBERS_PROTOCOL, () => (lists++, [{ id: c.id, info: { name: 'c', labels: {}, dataPlanePort: 1 }, addrs, ageMs: Date.now() - began }]));
    await serveJson(e.libp2p, INFO_PROTOCOL, () => ({ name: 'e', labels: {}, dataPlanePort: 1 }));
    // A period of a minute: what d hears of stays for 4 minutes, as in a fleet.
    const d = await member('d', [{ node: e }], { maxConnections: 8, periodMs: 60_000 });
    await waitFor('d connected to c', () => d.node.libp2p.getConnections(c.node.libp2p.peerId).length > 0, { timeoutMs: 5_000 });
    await c.router.stop();
    await c.node.stop();
    await waitFor('d to drop c', () => !names(d).includes('c'), { timeoutMs: 5_000 });
    // d asks a peer for its list again 5 s after its first (LIST_AGAIN_MS): e is the only one left.
    await waitFor('d to ask e again', () => lists >= 2, { timeoutMs: 10_000 });
    await new Promise((r) => setTimeout(r, 200));
    expect(names(d)).not.toContain('c');
  });

  test('a joining node whose first peer did not give its list asks again, though it knows no other peer', async () => {
    // e, which gives its NodeInfo like a member but gossips nothing, fails the first list asked of it, then lists c.
    const c = await member('c', []);
    const e = await bareNode();
    const addrs = c.node.libp2p.getMultiaddrs().map((ma) => ma.decapsulateCode(CODE_P2P).toString());
    let lists = 0;
    await serveJson(e.libp2p, MEMBERS_PROTOCOL, () => {
      if (++lists === 1) throw new Error('too busy');
      return [{ id: c.id, info: { name: 'c', labels: {}, dataPlanePort: 1 }, addrs, ageMs: 0 }];
    });
    await serveJson(e.libp2p, INFO_PROTOCOL, () => ({ name: 'e', labels: {}, dataPlanePort: 1 }));
    const d = await member('d', [{ node: e }], { maxConnections: 8, periodMs: 60_000 });
    // Asked again 5 s after the first (LIST_AGAIN_MS).
    await waitFor('d to know c', () => names(d).includes('c'), { timeoutMs: 10_000 });
    expect(lists).toBeGreaterThanOrEqual(2);
  });

  test('a connected peer that did not give its NodeInfo when asked at first is asked again, and is a member', async () => {
    // e, which gossips nothing and lists nobody, fails the first request for its NodeInfo (a busy host's timeout).
    const e = await bareNode();
    let asked = 0;
    await serveJson(e.libp2p, INFO_PROTOCOL, () => {
      if (++asked === 1) throw new Error('too busy');
      return { name: 'e', labels: {}, dataPlanePort: 1 };
    });
    const d = await member('d', [{ node: e }], { maxConnections: 8 });
    await waitFor('d connected to e', () => d.node.libp2p.getConnections(e.libp2p.peerId).length > 0, { timeoutMs: 5_000 });
    const connection = d.node.libp2p.getConnections(e.libp2p.peerId)[0];
    await waitFor('d to know e', () => names(d).includes('e'), { timeoutMs: 5_000 }); // periods of 1–1.1 s
    expect(asked).toBe(2);
    expect(connection.status).toBe('open'); // asked again over the same connection
  });

  test('a connected peer whose identify failed is identified again, and is a member', async () => {
    // e, which gossips nothing and lists nobody, fails the first identify asked of it (a busy host's timeout).
    const e = await bareNode();
    await serveJson(e.libp2p, INFO_PROTOCOL, () => ({ name: 'e', labels: {}, dataPlanePort: 1 }));
    type Registrar = { getHandler(protocol: string): StreamHandlerRecord };
    const identify = (e.libp2p as unknown as { components: { registrar: Registrar } }).components.registrar.getHandler(IDENTIFY_PROTOCOL);
    let identifies = 0;
    await e.libp2p.handle(IDENTIFY_PROTOCOL, (stream, connection) => {
      if (++identifies === 1) return stream.abort(new Error('too busy'));
      return identify.handler(stream, connection);
    }, { ...identify.options, force: true });
    // Nor does e push its identify to d (as a host whose protocols and addresses do not change would not).
    await (e.libp2p.services.identifyPush as unknown as { stop(): Promise<void> }).stop();
    const d = await member('d', [{ node: e }], { maxConnections: 8 });
    await waitFor('d connected to e', () => d.node.libp2p.getConnections(e.libp2p.peerId).length > 0, { timeoutMs: 5_000 });
    const connection = d.node.libp2p.getConnections(e.libp2p.peerId)[0];
    await waitFor('d to know e', () => names(d).includes('e'), { timeoutMs: 10_000 }); // the connection 6 s old, then a period
    expect(identifies).toBe(2);
    expect(connection.status).toBe('open'); // identified again over the same connection
  });

  test('a joining node told of many members dials no more of them at once than its cap has room for', async () => {
    // Ten members that accept a connection and never answer: each dial lasts until its timeout.
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket.on('error', () => {})));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const addrs = [`/ip4/127.0.0.1/tcp/${(silent.address() as AddressInfo).port}`];
      const listed = await Promise.all(Array.from({ length: 10 }, async (_, i) => ({
        id: peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString(), info: { name: `m${i}`, labels: {}, dataPlanePort: 1 }, addrs, ageMs: 0,
      })));
      const e = await bareNode();
      await serveJson(e.libp2p, MEMBERS_PROTOCOL, () => listed);
      const d = await member('d', [{ node: e }], { maxConnections: 3 });
      await waitFor('d to know the ten', () => names(d).filter((n) => n.startsWith('m')).length === 10, { timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 500));
      expect(sockets.length, 'dials of listed members at once, beside d\'s connection to e').toBeLessThanOrEqual(2);
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  test('a member heard of is dialed while there is room under the cap, and not past it', async () => {
    // e lists c, a member nobody else is connected to; d joins through e.
    const c = await member('c', []);
    const e = await bareNode();
    const addrs = c.node.libp2p.getMultiaddrs().map((ma) => ma.decapsulateCode(CODE_P2P).toString());
    await serveJson(e.libp2p, MEMBERS_PROTOCOL, () => [{ id: c.id, info: { name: 'c', labels: {}, dataPlanePort: 1 }, addrs, ageMs: 0 }]);
    const full = await member('full', [{ node: e }], { maxConnections: 1 });
    const d = await member('d', [{ node: e }], { maxConnections: 8 });
    await waitFor('d connected to c', () => d.node.libp2p.getConnections(c.node.libp2p.peerId).length > 0, { timeoutMs: 5_000 });
    await waitFor('full to know c', () => names(full).includes('c'), { timeoutMs: 5_000 });
    await new Promise((r) => setTimeout(r, 500)); // as long as d took to dial c, and more
    expect(full.node.libp2p.getConnections(c.node.libp2p.peerId)).toHaveLength(0);
  });

  test('announcements that are not a NodeInfo with addresses are ignored', async () => {
    const a = await member('a', [], { maxConnections: 64 });
    const b = await member('b', [a], { maxConnections: 64 });
    await waitFor('a and b know each other', () => names(a).length === 1 && names(b).length === 1);
    const c = await member('c', [a], { periodMs: 600_000, maxConnections: 64 });
    await waitFor('c known to b', () => names(b).includes('c'));
    await b.node.libp2p.hangUp(c.node.libp2p.peerId);
    await c.node.libp2p.services.pubsub.publish(MEMBERS_TOPIC, new TextEncoder().encode(JSON.stringify({ info: { name: 'c2' }, addrs: [] })));
    await c.node.libp2p.services.pubsub.publish(MEMBERS_TOPIC, new TextEncoder().encode('not json'));
    await new Promise((r) => setTimeout(r, 1_000));
    expect(names(b)).toEqual(['a', 'c']);
    expect(b.router.peers().find((p) => p.info?.name === 'c')?.info?.labels).toEqual({ n: 'c' });
    // An address b cannot read (a transport it does not know), heard while not connected to c: dialing it threw
    // in gossipsub's listener, and the process died.
    const cut = cutOff(c, [b]);
    try {
      await b.node.libp2p.hangUp(c.node.libp2p.peerId);
      const unknown = { info: { name: 'c', labels: { n: 'c' }, dataPlanePort: 5001 }, addrs: ['/foo/bar'] };
      await c.node.libp2p.services.pubsub.publish(MEMBERS_TOPIC, new TextEncoder().encode(JSON.stringify(unknown)));
      await new Promise((r) => setTimeout(r, 1_000));
      expect(names(b)).toEqual(['a', 'c']);
    } finally {
      cut.end();
    }
  });
});
