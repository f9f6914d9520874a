// A child process of the announce benchmark (bench/announce.ts): hosts some mesh nodes and runs what the
// coordinator asks over IPC. Replies carry the request's id; errors come back as { id, error }.
import '../src/polyfill.js';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createMeshNode, MAX_CONNECTIONS, type MeshNode } from '../src/dht/libp2p-node.js';
import { envInt } from './lib/stats.js';
import { Libp2pRouter } from '../src/dht/libp2p-router.js';
import { keyToCid } from '../src/dht/kad-keys.js';

export type WorkerRequest =
  | { cmd: 'start'; count: number; swarmKey: string; bootstrap: string[]; name: string; gapMs?: number }
  | { cmd: 'wait-peers'; min: number; timeoutMs: number }
  | { cmd: 'announce'; keys: string[] }
  | { cmd: 'poll'; keys: string[]; provider: string }
  | { cmd: 'lookups'; keys: string[]; provider: string }
  | { cmd: 'misses'; keys: string[] }
  | { cmd: 'baseline'; keys: string[] }
  | { cmd: 'cpu' }
  | { cmd: 'conns' }
  | { cmd: 'stop' };

const logger = pino({ level: process.env.BENCH_LOG ?? 'warn' }, pino.destination(2));
const nodes: MeshNode[] = [];
const routers: Libp2pRouter[] = [];

async function handle(req: WorkerRequest): Promise<unknown> {
  switch (req.cmd) {
    case 'start': {
      for (let n = 0; n < req.count; n++) {
        if (n > 0 && req.gapMs) await sleep(req.gapMs);
        const i = nodes.length;
        const node = await createMeshNode({
          privateKey: await generateKeyPair('Ed25519'),
          listen: ['/ip4/127.0.0.1/tcp/0'],
          // Everyone bootstraps to the first node of the fleet (this process's first, when none is given).
          bootstrap: req.bootstrap.length > 0 ? req.bootstrap : firstAddrs(),
          mdns: false,
          swarmKey: new TextEncoder().encode(req.swarmKey),
          logger: logger.child({ node: `${req.name}-${i}` }),
          recordTtlMs: 3_600_000,
          maxConnections: envInt('BENCH_MAX_CONNECTIONS', MAX_CONNECTIONS),
        });
        nodes.push(node);
        routers.push(await Libp2pRouter.create({
          node,
          nodeInfo: { name: `${req.name}-${i}`, labels: {}, dataPlanePort: 0 },
          logger,
          batchProtocol: process.env.BENCH_ADD_PROVIDER !== '1',
        }));
      }
      return { ids: routers.map((r) => r.id), addrs: firstAddrs() };
    }
    case 'wait-peers': {
      const deadline = Date.now() + req.timeoutMs;
      while (Math.min(...routers.map((r) => r.peers().length)) < req.min) {
        if (Date.now() > deadline) {
          const counts = routers.map((r, i) => `${r.peers().length}/${nodes[i].libp2p.getConnections().length}`);
          throw new Error(`members/connections of each node: ${counts.join(',')}; some below ${req.min} member(s) after ${req.timeoutMs} ms`);
        }
        await sleep(500); // every router's peers() walks its roster: polled often, it loads the mesh being measured
      }
      return {};
    }
    case 'conns':
      return { conns: nodes.map((node) => node.libp2p.getConnections().length) };
    case 'cpu': {
      const cpu = process.cpuUsage();
      return { cpuMs: (cpu.user + cpu.system) / 1000 };
    }
    case 'announce': {
      const router = routers[0];
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      process.send!({ event: 'announcing', t0 });
      router.announce({ add: req.keys });
      await router.settled();
      const cpu = process.cpuUsage(cpu0);
      return { t0, settledAt: Date.now(), cpuMs: (cpu.user + cpu.system) / 1000 };
    }
    case 'poll': {
      // Round after round over the keys not found yet, from this process's nodes in turn.
      const left = new Set(req.keys);
      for (let round = 0; left.size > 0; round++) {
        let i = round;
        for (const key of [...left]) {
          if (await finds(routers[i++ % routers.length], key, req.provider)) left.delete(key);
        }
        if (left.size > 0) await sleep(100); // gently: every miss is a DHT query that loads the mesh
      }
      return { at: Date.now() };
    }
    case 'lookups': {
      // From every node of this process in turn; a lookup that ends without the provider is a miss.
      const ms: number[] = [];
      let missed = 0;
      const first = Math.floor(Math.random() * routers.length);
      for (const [j, key] of req.keys.entries()) {
        const router = routers[(first + j) % routers.length];
        const t = performance.now();
        if (await finds(router, key, req.provider)) ms.push(performance.now() - t);
        else missed++;
      }
      return { ms, missed };
    }
    case 'misses': {
      const ms: number[] = [];
      for (const key of req.keys) {
        const t = performance.now();
        for await (const p of routers[0].findProviders(key)) throw new Error(`absent key ${key} has provider ${p.id}`);
        ms.push(performance.now() - t);
      }
      return { ms };
    }
    case 'baseline': {
      // kad-dht's own provide(), one key at a time: the cost batching avoids.
      const dht = nodes[0].libp2p.services.dht;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (const key of req.keys) for await (const _ of dht.provide(keyToCid(key)));
      const cpu = process.cpuUsage(cpu0);
      return { cpuMsPerKey: (cpu.user + cpu.system) / 1000 / req.keys.length, wallMsPerKey: (performance.now() - t0) / req.keys.length };
    }
    case 'stop': {
      await Promise.all(routers.map((r) => r.stop()));
      setImmediate(() => process.exit(0));
      return {};
    }
  }
}

function firstAddrs(): string[] {
  return nodes[0]?.libp2p.getMultiaddrs().map(String) ?? [];
}

async function finds(router: Libp2pRouter, key: string, provider: string): Promise<boolean> {
  for await (const p of router.findProviders(key)) if (p.id === provider) return true;
  return false;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

process.on('message', (msg: { id: number; req: WorkerRequest }) => {
  handle(msg.req).then(
    (result) => process.send!({ id: msg.id, result }),
    (err: Error) => process.send!({ id: msg.id, error: err.stack ?? err.message }),
  );
});
process.on('disconnect', () => process.exit(0)); // the coordinator is gone: never linger
