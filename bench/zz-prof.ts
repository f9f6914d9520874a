import '../src/polyfill.js';
import { pino } from 'pino';
import { randomBytes } from 'node:crypto';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createMeshNode } from '../src/dht/libp2p-node.js';
import { Libp2pRouter } from '../src/dht/libp2p-router.js';
import { generateSwarmKey } from '../src/dht/swarm-key.js';
const logger = pino({ level: 'warn' });
const swarmKey = process.env.NOPSK ? undefined : new TextEncoder().encode(generateSwarmKey());
const rs: Libp2pRouter[] = [];
let boot: string[] = [];
for (let i = 0; i < 2; i++) {
  const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: boot, mdns: false, swarmKey, logger, recordTtlMs: 3600000 });
  if (i === 0) boot = node.libp2p.getMultiaddrs().map(String);
  rs.push(await Libp2pRouter.create({ node, nodeInfo: { name: 'x', labels: {}, dataPlanePort: 0 }, logger }));
}
await new Promise((r) => setTimeout(r, 2000));
const keys = Array.from({ length: Number(process.env.N ?? 10000) }, () => `sha256:${randomBytes(32).toString('hex')}`);
const t0 = Date.now(); const c0 = process.cpuUsage();
rs[1].announce({ add: keys });
await rs[1].settled();
const c = process.cpuUsage(c0);
console.log('settled ms', Date.now() - t0, 'cpu ms', (c.user + c.system) / 1000);
await Promise.all(rs.map((r) => r.stop()));
process.exit(0);
