// The push protocol against meshd's own registry, in process (memory store): what crosses the wire, in
// which order, and what the user is told when the registry says no.
import { createHash, randomBytes } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../store/memory-store.js';
import { StoreUnavailableError } from '../../store/store.js';
import type { Descriptor } from '../../oci/digest.js';
import { createRegistry } from '../../registry/server.js';
import { UploadSessions } from '../../registry/upload-sessions.js';
import { RegistryRejectedError } from './errors.js';
import { planPush, type PlannedBlob } from './plan.js';
import { pushImage, REPLICATE_HEADER, type BlobOutcome, type PushListener } from './push.js';
import { parsePlatform } from './refs.js';
import { ConnectionError, RegistryClient } from './registry-client.js';
import { Access } from '../../registry/access.js';
import type { ImageSource } from './source.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** An image held in memory: blobs by digest and its root. */
class MemorySource implements ImageSource {
  readonly description = 'memory';
  readonly blobs = new Map<string, Buffer>();
  root!: Descriptor;

  add(mediaType: string, data: Buffer): Descriptor & { platform?: unknown } {
    this.blobs.set(sha(data), data);
    return { mediaType, digest: sha(data), size: data.length };
  }

  manifest(layers: Buffer[], arch = 'amd64'): Descriptor {
    const config = this.add('application/vnd.oci.image.config.v1+json', Buffer.from(JSON.stringify({ os: 'linux', architecture: arch, n: randomBytes(4).toString('hex') })));
    return this.add('application/vnd.oci.image.manifest.v1+json', Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config,
      layers: layers.map((l) => this.add('application/vnd.oci.image.layer.v1.tar', l)),
    })));
  }

  async has(digest: string) {
    return this.blobs.has(digest);
  }

  async open(digest: string) {
    const b = this.blobs.get(digest);
    if (!b) throw new Error(`no ${digest}`);
    return Readable.from([b]);
  }

  async close() {}
}

class Recorder implements PushListener {
  readonly outcomes = new Map<string, BlobOutcome>();
  readonly notes: string[] = [];
  bytes = 0;
  note(m: string) {
    this.notes.push(m);
  }
  blobStart() {}
  blobBytes(_b: PlannedBlob, n: number) {
    this.bytes += n;
  }
  blobDone(b: PlannedBlob, outcome: BlobOutcome) {
    this.outcomes.set(b.descriptor.digest, outcome);
  }
}

let store: MemoryStore;
let app: ReturnType<typeof createRegistry>;
let client: RegistryClient;
let requests: { method: string; url: string; replicate?: string }[];

/** `asUid`: the uid the registry sees behind each connection, as if pussh ran as that user there. */
async function startRegistry(token?: string, asUid = 0, maxSessionsPerClient = 10) {
  store = new MemoryStore();
  const log = pino({ level: 'silent' });
  app = createRegistry({ store, uploads: new UploadSessions(store, { maxBlobBytes: 1 << 30, idleTimeoutMs: 60_000, maxSessions: 100, maxSessionsPerClient }, log), log, maxManifestBytes: 4 << 20,
    access: new Access({ token, writeGroup: 'layermesh', log, localUid: async () => asUid }) });
  requests = [];
  app.addHook('onRequest', async (req) => {
    const replicate = req.headers[REPLICATE_HEADER];
    requests.push({ method: req.method, url: req.url, ...(replicate ? { replicate: String(replicate) } : {}) });
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const port = (app.server.address() as { port: number }).port;
  client = new RegistryClient({ host: '127.0.0.1', port, authority: `127.0.0.1:${port}` });
}

beforeEach(() => startRegistry());
afterEach(async () => {
  client.close();
  await app.close();
});

describe('pushImage', () => {
  it('sends every blob once, then the manifest by tag with the replication header', async () => {
    const src = new MemorySource();
    const layers = [randomBytes(5000), randomBytes(7000), randomBytes(3000)];
    src.root = src.manifest(layers);
    const rec = new Recorder();
    const stats = await pushImage(client, src, await planPush(src), { repo: 'app', tag: '1', replicate: 'all' }, { parallel: 2, listener: rec });
    expect(stats.layers).toEqual({ total: 3, sent: 3, skipped: 0, mounted: 0 });
    expect(rec.bytes).toBe(15_000 + src.blobs.get([...rec.outcomes.keys()].find((d) => ![...layers.map(sha)].includes(d))!)!.length);
    expect((await store.images.get('docker.io/library/app:1'))?.target.digest).toBe(src.root.digest);
    const manifestPuts = requests.filter((r) => r.method === 'PUT' && r.url.includes('/manifests/'));
    expect(manifestPuts).toEqual([{ method: 'PUT', url: '/v2/app/manifests/1', replicate: 'all' }]);
    expect(requests.filter((r) => r.replicate)).toHaveLength(1);
  });

  it('sends only what changed on a second push', async () => {
    const src = new MemorySource();
    const kept = [randomBytes(5000), randomBytes(6000)];
    src.root = src.manifest(kept);
    await pushImage(client, src, await planPush(src), { repo: 'app', tag: '1' }, { parallel: 4, listener: new Recorder() });
    const changed = randomBytes(4000);
    src.root = src.manifest([kept[0], changed]);
    requests.length = 0;
    const rec = new Recorder();
    const stats = await pushImage(client, src, await planPush(src), { repo: 'app', tag: '2' }, { parallel: 4, listener: rec });
    expect(stats.layers).toEqual({ total: 2, sent: 1, skipped: 1, mounted: 0 });
    expect(stats.blobsSent).toBe(2); // the changed layer and the new config
    expect(rec.outcomes.get(sha(changed))).toBe('sent');
    expect(rec.outcomes.get(sha(kept[0]))).toBe('exists');
    // Each blob is asked for with HEAD before anything is sent.
    expect(requests.filter((r) => r.method === 'HEAD' && r.url.includes('/blobs/'))).toHaveLength(3);
  });

  it('pushes an index whole, platform manifests before it, or one platform with its tag naming that manifest', async () => {
    const src = new MemorySource();
    const amd = src.manifest([randomBytes(1000)], 'amd64');
    const arm = src.manifest([randomBytes(1000)], 'arm64');
    src.root = src.add('application/vnd.oci.image.index.v1+json', Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [{ ...amd, platform: { os: 'linux', architecture: 'amd64' } }, { ...arm, platform: { os: 'linux', architecture: 'arm64' } }],
    })));
    await pushImage(client, src, await planPush(src), { repo: 'multi', tag: 'all' }, { parallel: 4, listener: new Recorder() });
    const puts = requests.filter((r) => r.method === 'PUT' && r.url.includes('/manifests/')).map((r) => r.url);
    expect(puts).toEqual([`/v2/multi/manifests/${amd.digest}`, `/v2/multi/manifests/${arm.digest}`, '/v2/multi/manifests/all']);
    expect((await store.images.get('docker.io/library/multi:all'))?.target.digest).toBe(src.root.digest);

    await startRegistry();
    const plan = await planPush(src, parsePlatform('linux/arm64'));
    expect(plan.platform).toBe('linux/arm64');
    await pushImage(client, src, plan, { repo: 'multi', tag: 'arm' }, { parallel: 4, listener: new Recorder() });
    expect((await store.images.get('docker.io/library/multi:arm'))?.target.digest).toBe(arm.digest);
    expect(await store.stat(amd.digest)).toBeUndefined();
    await expect(planPush(src, parsePlatform('linux/s390x'))).rejects.toThrow(/no linux\/s390x \(it has linux\/amd64, linux\/arm64\)/);
  });

  it('takes the platform\'s manifest that is held locally, the default variant first, when the index lists several', async () => {
    const src = new MemorySource();
    const v6 = src.manifest([randomBytes(100)], 'arm');
    const v7 = src.manifest([randomBytes(100)], 'arm');
    const v5 = src.manifest([randomBytes(100)], 'arm');
    src.root = src.add('application/vnd.oci.image.index.v1+json', Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [v6, v5, v7].map((m, i) => ({ ...m, platform: { os: 'linux', architecture: 'arm', variant: ['v6', 'v5', 'v7'][i] } })),
    })));
    src.blobs.delete(v6.digest); // a pull of linux/arm kept v7 (and, here, v5)
    expect((await planPush(src, parsePlatform('linux/arm'))).root.digest).toBe(v7.digest);
    src.blobs.delete(v7.digest);
    expect((await planPush(src, parsePlatform('linux/arm'))).root.digest).toBe(v5.digest);
    await expect(planPush(src, parsePlatform('linux/arm/v6'))).rejects.toThrow(/linux\/arm\/v6 \(sha256:\w+\) of sha256:\w+ is not held locally/);
  });

  it('fails, as the local image\'s fault, when a local blob breaks off or is shorter than its descriptor; tags nothing', async () => {
    const cases: [string, (layer: Buffer) => Readable, RegExp][] = [
      ['breaks off', (layer) => Readable.from((async function* () {
        yield layer.subarray(0, 1000);
        throw new Error('containerd went away');
      })()), /reading blob sha256:\w+ of the local image: containerd went away/],
      ['is short', (layer) => Readable.from([layer.subarray(0, layer.length - 10)]), /holds 39990 bytes, its descriptor says 40000/],
    ];
    for (const [what, open, message] of cases) {
      const src = new MemorySource();
      const layer = randomBytes(40_000);
      src.root = src.manifest([layer]);
      const whole = src.open.bind(src);
      src.open = async (digest) => (digest === sha(layer) ? open(layer) : whole(digest));
      const err = await pushImage(client, src, await planPush(src), { repo: 'app', tag: '1' }, { parallel: 2, listener: new Recorder() }).catch((e) => e);
      expect(err, what).toMatchObject({ kind: 'failed', message: expect.stringMatching(message) });
      expect(await store.images.get('docker.io/library/app:1'), what).toBeUndefined();
      expect(await store.stat(sha(layer)), what).toBeUndefined();
      expect(requests.filter((r) => r.method === 'DELETE'), `${what}: the upload cancelled`).toHaveLength(1);
      requests.length = 0;
    }
  });

  it('waits while the registry is busy (more blobs at once than it lets one client upload; its store down a moment), sending each byte once', async () => {
    client.close();
    await app.close();
    await startRegistry(undefined, 0, 1);
    const src = new MemorySource();
    const layers = [randomBytes(30_000), randomBytes(20_000), randomBytes(10_000)];
    src.root = src.manifest(layers);
    let commitsRefused = 0;
    let putsRefused = 0;
    const begin = store.beginUpload.bind(store);
    store.beginUpload = async () => {
      const upload = await begin();
      const commit = upload.commit.bind(upload);
      upload.commit = async (expected, labels) => {
        if (commitsRefused++ < 2) throw new StoreUnavailableError('committing');
        return commit(expected, labels);
      };
      return upload;
    };
    const put = store.images.put.bind(store.images);
    store.images.put = async (record) => {
      if (putsRefused++ < 1) throw new StoreUnavailableError('tagging');
      return put(record);
    };
    const rec = new Recorder();
    const stats = await pushImage(client, src, await planPush(src), { repo: 'app', tag: '1' }, { parallel: 3, listener: rec, patience: { totalMs: 30_000, longestWaitMs: 50 } });
    expect((await store.images.get('docker.io/library/app:1'))?.target.digest).toBe(src.root.digest);
    expect(stats.layers).toEqual({ total: 3, sent: 3, skipped: 0, mounted: 0 });
    const blobBytes = [...rec.outcomes.keys()].reduce((n, d) => n + src.blobs.get(d)!.length, 0);
    expect(rec.bytes, 'attempts that failed taken back').toBe(blobBytes);
    expect(stats.bytesSent).toBe(blobBytes + src.blobs.get(src.root.digest)!.length);
    expect(rec.notes.some((n) => /registry is busy \(429 TOOMANYREQUESTS\)/.test(n)), rec.notes.join('\n')).toBe(true);
    expect(rec.notes.some((n) => /blob sha256:\w+: the registry is busy \(503 UNAVAILABLE\)/.test(n))).toBe(true);
    expect(rec.notes.some((n) => /manifest app:1: the registry is busy \(503 UNAVAILABLE\)/.test(n))).toBe(true);
  });

  it('fails the push when the registry stays busy longer than its patience', async () => {
    store.images.put = async () => {
      throw new StoreUnavailableError('tagging');
    };
    const src = new MemorySource();
    src.root = src.manifest([randomBytes(100)]);
    const started = Date.now();
    const err = await pushImage(client, src, await planPush(src), { repo: 'app', tag: '1' }, { parallel: 2, listener: new Recorder(), patience: { totalMs: 400, longestWaitMs: 100 } }).catch((e) => e);
    expect(err).toMatchObject({ kind: 'push-rejected', status: 503, code: 'UNAVAILABLE', retryAfterSeconds: 5 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
  });

  it("reports the registry's error code and message when it refuses", async () => {
    await startRegistry('secret', 65534);
    const src = new MemorySource();
    src.root = src.manifest([randomBytes(100)]);
    const err = await pushImage(client, src, await planPush(src), { repo: 'app', tag: '1' }, { parallel: 2, listener: new Recorder() }).catch((e) => e);
    expect(err).toBeInstanceOf(RegistryRejectedError);
    expect(err).toMatchObject({ kind: 'push-rejected', status: 401, code: 'UNAUTHORIZED' });
    expect(err.message).toMatch(/--token/);
  });
});

describe('RegistryClient', () => {
  it("prints a remote registry's error message with its control characters escaped", async () => {
    const hostile = createHttpServer((_req, res) => {
      res.writeHead(400, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ errors: [{ code: 'DENIED', message: 'no\u001b]52;c;ZXZpbA==\u0007\u001b[2J' }] }));
    });
    await new Promise<void>((resolve) => hostile.listen(0, '127.0.0.1', resolve));
    const { port } = hostile.address() as { port: number };
    const remote = new RegistryClient({ host: '127.0.0.1', port, authority: `127.0.0.1:${port}` });
    try {
      const err = await remote.startUpload('app', { digest: `sha256:${'a'.repeat(64)}`, from: 'app' }).catch((e: Error) => e);
      expect(err).toBeInstanceOf(RegistryRejectedError);
      expect((err as Error).message).toContain('no\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J');
      expect((err as Error).message).not.toMatch(/[\x00-\x1f]/);
    } finally {
      remote.close();
      await new Promise((resolve) => hostile.close(resolve));
    }
  });

  it('gives up on a registry that accepted the connection and never answers', async () => {
    const sockets: Socket[] = [];
    const silent = createServer((socket) => void sockets.push(socket.on('data', () => {})));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    const stalled = new RegistryClient({ host: '127.0.0.1', port, authority: `127.0.0.1:${port}` }, 2, 300);
    try {
      const err = await stalled.ping().catch((e) => e);
      expect(err).toBeInstanceOf(ConnectionError);
      expect(err.message).toMatch(/GET \/v2\/: nothing moved for 0.3 s/);
    } finally {
      stalled.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});
