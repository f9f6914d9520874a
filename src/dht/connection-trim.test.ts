import { describe, expect, test } from 'vitest';
import { pino } from 'pino';
import type { Connection, PeerId, Tag } from '@libp2p/interface';
import { ConnectionTrim, type TrimmedNode } from './connection-trim.js';

/** A connection to `peer`, opened at `open`, with streams of these protocols. */
interface FakeConnection {
  peer: string;
  open: number;
  protocols: string[];
  closed?: boolean;
}

/** libp2p's connections and peer tags, as the trim sees them. */
function fakeNode(connections: FakeConnection[], tags: Record<string, Record<string, number>>): TrimmedNode {
  const asConnection = (c: FakeConnection) => ({
    remotePeer: { toString: () => c.peer } as PeerId,
    timeline: { open: c.open },
    streams: c.protocols.map((protocol) => ({ protocol })),
    close: async () => void (c.closed = true),
    abort: () => void (c.closed = true),
  }) as unknown as Connection;
  return {
    getConnections: () => connections.filter((c) => !c.closed).map(asConnection),
    peerStore: {
      get: async (peer: PeerId) => {
        const t = tags[peer.toString()];
        if (t === undefined) throw Object.assign(new Error('not found'), { name: 'NotFoundError' });
        return { tags: new Map<string, Tag>(Object.entries(t).map(([name, value]) => [name, { value }])) } as never;
      },
    },
    addEventListener: () => undefined,
    removeEventListener: () => undefined,
  };
}

const GOSSIP = ['/meshsub/1.2.0', '/meshsub/1.2.0'];
const log = pino({ level: 'silent' });

describe('ConnectionTrim', () => {
  test('closes idle connections beyond the cap, least valued and newest first, even with gossip streams open', async () => {
    const conns: FakeConnection[] = [
      { peer: 'old-plain', open: 1, protocols: GOSSIP },
      { peer: 'new-plain', open: 5, protocols: GOSSIP },
      { peer: 'in-table', open: 6, protocols: GOSSIP },
      { peer: 'unknown', open: 2, protocols: ['/ipfs/id/1.0.0'] },
      { peer: 'busy', open: 7, protocols: [...GOSSIP, '/layermesh/kad/1.0.0'] },
      { peer: 'closest', open: 8, protocols: GOSSIP },
    ];
    const tags = {
      'old-plain': {},
      'new-plain': {},
      'in-table': { 'kad-peer': 1 },
      busy: {},
      closest: { 'kad-close': 50, 'keep-alive-kad-dht': 1 },
    };
    await new ConnectionTrim(fakeNode(conns, tags), log, 3).trim();
    expect(conns.filter((c) => c.closed).map((c) => c.peer).sort()).toEqual(['new-plain', 'old-plain', 'unknown']);
  });

  test('never closes a busy or keep-alive connection, even when that leaves the node above its cap', async () => {
    const conns: FakeConnection[] = [
      { peer: 'busy', open: 1, protocols: ['/layermesh/info/1.0.0'] },
      { peer: 'negotiating', open: 2, protocols: [''] },
      { peer: 'closest', open: 3, protocols: [] },
      { peer: 'plain', open: 4, protocols: [] },
    ];
    const tags = { closest: { 'keep-alive-kad-dht': 1 } };
    await new ConnectionTrim(fakeNode(conns, tags), log, 1).trim();
    expect(conns.filter((c) => c.closed).map((c) => c.peer)).toEqual(['plain']);
  });

  test('leaves connections younger than 30 s alone: a joining node needs its first ones', async () => {
    const now = Date.now();
    const conns: FakeConnection[] = [
      { peer: 'joiner', open: now - 1_000, protocols: GOSSIP },
      { peer: 'settled', open: now - 60_000, protocols: GOSSIP },
    ];
    const trim = new ConnectionTrim(fakeNode(conns, {}), log, 1);
    await trim.trim();
    trim.stop();
    expect(conns.filter((c) => c.closed).map((c) => c.peer)).toEqual(['settled']);
  });

  test('trims again after a trim when connections opened while it ran leave the node above its cap', async () => {
    const conns: FakeConnection[] = [{ peer: 'a', open: 1, protocols: [] }, { peer: 'b', open: 2, protocols: [] }, { peer: 'c', open: 3, protocols: [] }];
    const node = fakeNode(conns, {});
    let opened = () => {};
    node.addEventListener = (_type, listener) => void (opened = listener);
    const trim = new ConnectionTrim(node, log, 2);
    trim.start();
    const first = trim.trim();
    conns.push({ peer: 'late', open: 4, protocols: [] });
    opened(); // while the trim runs: not looked at by it
    await first;
    expect(conns.filter((c) => !c.closed)).toHaveLength(3);
    await new Promise((r) => setTimeout(r, 1_500));
    trim.stop();
    expect(conns.filter((c) => !c.closed)).toHaveLength(2);
  });

  test('does not trim again once stopped while a trim ran', async () => {
    const conns: FakeConnection[] = [{ peer: 'a', open: 1, protocols: [] }, { peer: 'b', open: 2, protocols: [] }, { peer: 'c', open: 3, protocols: [] }];
    const trim = new ConnectionTrim(fakeNode(conns, {}), log, 1);
    trim.start();
    const running = trim.trim();
    conns.push({ peer: 'late', open: 4, protocols: [] });
    trim.stop();
    await running;
    const open = conns.filter((c) => !c.closed).length;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(conns.filter((c) => !c.closed)).toHaveLength(open);
  });

  test('does nothing at or below the cap', async () => {
    const conns: FakeConnection[] = [{ peer: 'a', open: 1, protocols: [] }, { peer: 'b', open: 2, protocols: [] }];
    await new ConnectionTrim(fakeNode(conns, {}), log, 2).trim();
    expect(conns.some((c) => c.closed)).toBe(false);
  });
});
