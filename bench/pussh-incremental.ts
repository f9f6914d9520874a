// Bytes on the wire for an update: pussh of an image whose top layer changed, against `docker save | ssh |
// docker load`, which sends the whole archive every time. Both go through the same real ssh connection to a
// real sshd on loopback, and both are counted by a TCP proxy in front of sshd: the bytes the network would
// carry (encrypted, handshake and protocol overhead included), not what either tool says it sent.
// The receiving end of the reference is `cat > /dev/null` (no Docker engine here); what crosses the wire is
// the same as for `docker load`.
import { execFile, spawn } from 'node:child_process';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { buildImage, withChangedLayer, type BuiltImage } from '../test/helpers/oci-image.js';
import { startSshd } from '../test/helpers/sshd.js';
import { onCleanup } from './lib/cleanup.js';
import { startMeshd } from './lib/servers.js';
import { MiB } from './lib/stats.js';

const PUSSH = fileURLToPath(new URL('../src/cli/pussh.js', import.meta.url));
const exec = promisify(execFile);

export interface PusshIncrementalReport {
  imageBytes: number;
  layers: number;
  changedLayerBytes: number;
  /** Wire bytes (both directions) of the first, full pussh. */
  firstPushWireBytes: number;
  /** Wire bytes of pussh after the one-layer change. */
  pusshWireBytes: number;
  /** What pussh's --json summary says it sent (blob and manifest bytes). */
  pusshReportedBytes: number;
  /** Blob bytes the remote meshd committed during that push (its logs). */
  remoteReceivedBytes: number;
  pusshSeconds: number;
  /** Size of the `docker save` archive of the changed image. */
  archiveBytes: number;
  /** Wire bytes of sending that archive over ssh. */
  saveWireBytes: number;
  saveSeconds: number;
  /** pusshWireBytes / saveWireBytes. */
  ratio: number;
}

interface CountingProxy {
  port: number;
  bytes(): number;
  reset(): void;
  /** Resolves once no connection through the proxy is open, so that the last bytes are counted. */
  idle(): Promise<void>;
  close(): Promise<void>;
}

/** A TCP proxy that counts the bytes passing in both directions. */
async function countingProxy(target: { host: string; port: number }): Promise<CountingProxy> {
  let bytes = 0;
  let open = 0;
  const server: Server = createServer((client) => {
    open++;
    client.once('close', () => open--);
    const upstream = connect(target);
    client.on('data', (d: Buffer) => (bytes += d.length));
    upstream.on('data', (d: Buffer) => (bytes += d.length));
    client.pipe(upstream).on('error', () => client.destroy());
    upstream.pipe(client).on('error', () => upstream.destroy());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as { port: number }).port,
    bytes: () => bytes,
    reset: () => (bytes = 0),
    idle: async () => {
      const deadline = Date.now() + 10_000;
      while (open > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      if (open > 0) throw new Error(`${open} connections through the counting proxy are still open`);
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

export async function benchPusshIncremental(work: string, opts: { layerSizes: number[] }, say: (line: string) => void): Promise<PusshIncrementalReport> {
  const sshd = await startSshd();
  const stopSshd = onCleanup(`sshd on port ${sshd.port}`, () => sshd.stop());
  const proxy = await countingProxy({ host: sshd.host, port: sshd.port });
  const closeProxy = onCleanup('counting proxy', () => proxy.close());
  const meshd = await startMeshd('meshd (pussh target)', ['--store', 'fs', '--log-level', 'debug']);
  try {
    const top = opts.layerSizes.length - 1;
    say(`building an image of ${opts.layerSizes.length} layers (${opts.layerSizes.map((s) => s / MiB).join('+')} MiB), then the same with its top layer changed…`);
    const v1: BuiltImage = buildImage({ layerSizes: opts.layerSizes, tag: '1', dir: join(work, 'pussh-v1') });
    const v2 = withChangedLayer(v1, { index: top, size: opts.layerSizes[top], tag: '2', dir: join(work, 'pussh-v2') });
    const target = `root@127.0.0.1:${proxy.port}`;
    const sshFlags = ['-i', sshd.keys.clientKey, '--no-host-key-check'];

    const push = async (image: BuiltImage) => {
      proxy.reset();
      const mark = meshd.logs.length;
      const t0 = process.hrtime.bigint();
      const { stdout } = await exec(process.execPath, [PUSSH, '--json', ...sshFlags, '--remote-registry', meshd.host,
        '--from', `oci:${image.dir}:${image.tag}`, `bench/app:${image.tag}`, target], { maxBuffer: 16 << 20 });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      await proxy.idle();
      const summary = JSON.parse(stdout) as { hosts: { bytesSent: number }[] };
      const received = meshd.logs.slice(mark).filter((l) => l.msg === 'upload committed').reduce((n, l) => n + Number(l.bytes), 0);
      return { wire: proxy.bytes(), reported: summary.hosts[0].bytesSent, received, seconds };
    };
    const first = await push(v1);
    say(`  first pussh (everything): ${(first.wire / MiB).toFixed(1)} MiB on the wire in ${first.seconds.toFixed(2)} s`);
    const second = await push(v2);
    say(`  pussh after the change:   ${(second.wire / MiB).toFixed(2)} MiB on the wire in ${second.seconds.toFixed(2)} s (pussh says ${(second.reported / MiB).toFixed(2)} MiB, meshd received ${(second.received / MiB).toFixed(2)} MiB of blobs)`);

    // What `docker save app:2 | ssh host docker load` sends: the whole archive.
    const archive = join(work, 'pussh-v2.tar');
    await exec('skopeo', ['--insecure-policy', 'copy', '--quiet', `oci:${v2.dir}:2`, `docker-archive:${archive}:bench/app:2`], { maxBuffer: 16 << 20 });
    const archiveBytes = (await stat(archive)).size;
    proxy.reset();
    const t0 = process.hrtime.bigint();
    await new Promise<void>((resolve, reject) => {
      const child = spawn('ssh', ['-i', sshd.keys.clientKey, '-o', 'StrictHostKeyChecking=no', '-o', 'UserKnownHostsFile=/dev/null', '-o', 'LogLevel=ERROR',
        '-o', 'BatchMode=yes', '-p', String(proxy.port), 'root@127.0.0.1', 'cat > /dev/null'], { stdio: ['pipe', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      createReadStream(archive).pipe(child.stdin);
      child.once('error', reject);
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ssh … cat exited with ${code}: ${err}`))));
    });
    const saveSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
    await proxy.idle();
    const saveWire = proxy.bytes();
    say(`  docker save | ssh:        ${(saveWire / MiB).toFixed(1)} MiB on the wire in ${saveSeconds.toFixed(2)} s (archive ${(archiveBytes / MiB).toFixed(1)} MiB)`);
    return {
      imageBytes: v1.blobs.reduce((n, b) => n + b.size, 0),
      layers: opts.layerSizes.length,
      changedLayerBytes: v2.layers[top].size,
      firstPushWireBytes: first.wire,
      pusshWireBytes: second.wire,
      pusshReportedBytes: second.reported,
      remoteReceivedBytes: second.received,
      pusshSeconds: second.seconds,
      archiveBytes,
      saveWireBytes: saveWire,
      saveSeconds,
      ratio: second.wire / saveWire,
    };
  } finally {
    await meshd.stop();
    await closeProxy();
    await stopSshd();
  }
}
