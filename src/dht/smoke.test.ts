import '../polyfill.js';
import { test, expect } from 'vitest';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createMeshNode } from './libp2p-node.js';
import { Libp2pRouter } from './libp2p-router.js';
import { generateSwarmKey, parseSwarmKey } from './swarm-key.js';

const logger = pino({ level: process.env.LOG ?? 'warn' });

test('smoke', async () => {
  const swarmKey = parseSwarmKey(generateSwarmKey());
  const routers: Libp2pRouter[] = [];
  try {
    let boot: string[] = [];
    for (let i = 0; i < 3; i++) {
      const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: boot, mdns: false, swarmKey, logger, recordTtlMs: 5000, bootstrapIntervalMs: 200 });
      const r = await Libp2pRouter.create({ node, nodeInfo: { name: `n${i}`, labels: {}, dataPlanePort: 0 }, logger });
      routers.push(r);
      if (i === 0) boot = node.libp2p.getMultiaddrs().map(String);
    }
    await new Promise((r) => setTimeout(r, 1500));
    console.log(routers.map((r) => r.peers().map((p) => [p.id.slice(-4), p.rttMs, p.info?.name])));
    const t0 = Date.now();
    routers[0].announce({ add: ['sha256:' + 'a'.repeat(64), 'docker.io/library/app:1'] });
    await routers[0].settled();
    console.log('settled', Date.now() - t0);
    for (const key of ['sha256:' + 'a'.repeat(64), 'docker.io/library/app:1', 'nothing']) {
      const t = Date.now();
      const found = [];
      for await (const p of routers[2].findProviders(key)) found.push(p);
      console.log(key, Date.now() - t, found);
    }
    expect(true).toBe(true);
  } finally {
    await Promise.all(routers.map((r) => r.stop()));
  }
}, 15000);
