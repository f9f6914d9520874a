// Members reported on libp2p: once per connection, however often the member's identify is pushed again.
import '../polyfill.js';
import { pino } from 'pino';
import { afterAll, expect, test } from 'vitest';
import { meshNodes } from '../../test/helpers/mesh-nodes.js';
import { serveJson } from './json-protocol.js';
import { INVENTORY_PROTOCOL, libp2pMembership } from './libp2p-membership.js';
import type { Router } from './router.js';

const nodes = meshNodes();
afterAll(() => nodes.stopAll());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a member is reported once per connection, not again at each identify-push (each report asks its inventory)', async () => {
  const member = await nodes.start();
  await serveJson(member.libp2p, INVENTORY_PROTOCOL, () => ({ name: 'm', keys: 0, images: [] }));
  const self = await nodes.start();
  const reported: string[] = [];
  // onMember reads no routing: a router is not needed to watch it.
  libp2pMembership(self.libp2p, { id: self.libp2p.peerId.toString() } as unknown as Router, pino({ level: 'silent' }), false)
    .onMember((id) => reported.push(id));
  await self.libp2p.dial(member.libp2p.getMultiaddrs()[0]);
  for (let i = 0; i < 100 && reported.length === 0; i++) await sleep(20);
  expect(reported).toEqual([member.libp2p.peerId.toString()]);

  // A new protocol on the member (as meshd's start registers them one by one): identify is pushed to its peers.
  for (let i = 0; i < 3; i++) await member.libp2p.handle(`/layermesh/test-${i}/1.0.0`, (stream) => stream.abort(new Error('unused')));
  await sleep(2_500); // identify-push waits a second for more changes
  expect(reported, 'reported again at an identify-push').toHaveLength(1);

  // Watched from now on by a second membership: the member, connected and identified already, reported once.
  const later: string[] = [];
  libp2pMembership(self.libp2p, { id: self.libp2p.peerId.toString() } as unknown as Router, pino({ level: 'silent' }), false)
    .onMember((id) => later.push(id));
  for (let i = 0; i < 100 && later.length === 0; i++) await sleep(20);
  await member.libp2p.handle('/layermesh/test-later/1.0.0', (stream) => stream.abort(new Error('unused')));
  await sleep(2_500);
  expect(later).toEqual([member.libp2p.peerId.toString()]);

  // A new connection is a new chance to have missed pushes: reported again.
  await self.libp2p.hangUp(member.libp2p.peerId);
  await self.libp2p.dial(member.libp2p.getMultiaddrs()[0]);
  for (let i = 0; i < 100 && reported.length < 2; i++) await sleep(20);
  expect(reported).toHaveLength(2);
  for (let i = 0; i < 100 && later.length < 2; i++) await sleep(20);
  expect(later).toHaveLength(2);
});

test('a member that gives no inventory is one warning a minute, however often it is surveyed', async () => {
  const mute = await nodes.start(); // serves no inventory protocol
  const self = await nodes.start();
  const lines: { msg: string; suppressed?: number }[] = [];
  const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const membership = libp2pMembership(self.libp2p, { id: self.libp2p.peerId.toString() } as unknown as Router, log, false);
  await self.libp2p.dial(mute.libp2p.getMultiaddrs()[0]);
  for (let i = 0; i < 5; i++) expect((await membership.inventories()).size).toBe(0);
  expect(lines.filter((l) => l.msg === 'peer did not give its inventory')).toHaveLength(1);
});
