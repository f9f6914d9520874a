import '../src/polyfill.js';
import { pino } from 'pino';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { createMeshNode } from '../src/dht/libp2p-node.js';
const logger = pino({ level: 'warn' });
const node = await createMeshNode({ privateKey: await generateKeyPair('Ed25519'), listen: ['/ip4/127.0.0.1/tcp/0'], bootstrap: [], mdns: false, logger, recordTtlMs: 3600000 });
try { const p = await node.libp2p.peerStore.get(node.libp2p.peerId); console.log('self in peerStore', p.addresses.map(a => a.multiaddr.toString()), p.protocols); } catch (e) { console.log('self not in peerStore', (e as Error).name); }
await node.stop();
