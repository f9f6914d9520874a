// Hosts on one LAN segment find each other by mDNS alone: no bootstrap address given.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Fleet } from './index.js';
import { waitFor } from '../helpers/wait.js';

describe('mDNS discovery', () => {
  let fleet: Fleet;
  beforeAll(async () => {
    fleet = await Fleet.up(3, { bootstrap: false, meshdArgs: ['--mdns'], waitFor: 'none' });
  });
  afterAll(async () => {
    await fleet?.down();
  });

  it('connects hosts that were given no bootstrap peer', async () => {
    for (const host of fleet.hosts) {
      const others = fleet.hosts.filter((h) => h !== host).map((h) => h.peerId);
      await waitFor(`${host.name} to find the others by mDNS`, async () => {
        const peers = (await host.peers()).map((p) => p.id);
        return others.every((id) => peers.includes(id));
      }, { timeoutMs: 30_000 });
    }
    const args = await fleet.hosts[1].exec('cat', [`/proc/${fleet.hosts[1].meshdPid}/cmdline`]);
    expect(args).not.toContain('--bootstrap');
  });
});
