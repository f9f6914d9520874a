// Real libp2p mesh nodes on loopback for the DHT's tests: quick to bootstrap, records short-lived.
import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { createMeshNode, type MeshNode } from '../../src/dht/libp2p-node.js';

export interface MeshNodes {
  /** A started node, dialing `bootstrap`. */
  start(bootstrap?: string[]): Promise<MeshNode>;
  stopAll(): Promise<unknown>;
}

export function meshNodes(): MeshNodes {
  const nodes: MeshNode[] = [];
  return {
    async start(bootstrap = []) {
      const node = await createMeshNode({
        privateKey: await generateKeyPair('Ed25519'),
        listen: ['/ip4/127.0.0.1/tcp/0'],
        bootstrap,
        mdns: false,
        logger: pino({ level: 'silent' }),
        recordTtlMs: 60_000,
        bootstrapIntervalMs: 100,
      });
      nodes.push(node);
      return node;
    },
    stopAll: () => Promise.all(nodes.splice(0).map((n) => n.stop())),
  };
}
