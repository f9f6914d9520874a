// The Store backed by containerd 1.6+ over its gRPC socket. Blob bytes are read straight from the
// content directory when this process may read it (several times faster than content.Read).
import { EventEmitter } from 'node:events';
import { constants as fsConstants } from 'node:fs';
import { access, open as openFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { NotFoundError, checkRange, type BlobInfo, type BlobReader, type ByteRange, type Store, type StoreEvent, type Upload } from '../store.js';
import { digestHex, isDigest } from '../../oci/digest.js';
import { Code, ContainerdClient, hasCode, unlessNotFound } from './client.js';
import { ContainerdImages } from './images.js';
import { ContainerdUpload, WRITE_RESPONSE_MS } from './upload.js';
import { CLOSE_EVENT, LOCAL_EVENT, containerdEvents } from './events.js';
import { abortLeftUploads, LaterReleases, releaseBlobs } from './leases.js';

export interface ContainerdStoreOptions {
  /** containerd's gRPC socket, e.g. /run/containerd/containerd.sock */
  socket: string;
  /** containerd namespace holding the images: `k8s.io` for Kubernetes, `moby` for dockerd's containerd store, `default` for ctr */
  namespace: string;
  logger: Logger;
  /** The content plugin's root (…/io.containerd.content.v1.content); asked from containerd when omitted. */
  contentRoot?: string;
  /** How long containerd may take to answer a message of an upload (WRITE_RESPONSE_MS). */
  writeResponseMs?: number;
  /**
   * Abort the uploads an earlier run of this daemon left in the namespace: only the daemon, once, at its start
   * (pussh reading the same namespace, or a second store beside it, would abort the daemon's live ones).
   */
  abortLeftUploads?: boolean;
}

interface WireInfo { digest: string; size: number; labels: Record<string, string> }

const READ_CHUNK = 1 << 20;

export class ContainerdStore implements Store {
  readonly kind = 'containerd' as const;
  readonly images: ContainerdImages;
  private readonly local = new EventEmitter();
  private readonly releases: LaterReleases;
  /** The leases of this store's uploads under way (ContainerdUpload): no release of a blob's leases takes them. */
  private readonly writing = new Set<string>();

  private constructor(
    private readonly client: ContainerdClient,
    private readonly logger: Logger,
    /** `<contentRoot>/blobs/sha256` when readable by this process, else undefined (reads go over gRPC). */
    readonly blobDir: string | undefined,
    private readonly writeResponseMs: number,
  ) {
    this.releases = new LaterReleases(logger);
    this.images = new ContainerdImages(client, this, logger, this.releases, this.writing);
  }

  static async connect(opts: ContainerdStoreOptions): Promise<ContainerdStore> {
    const logger = opts.logger.child({ socket: opts.socket, namespace: opts.namespace });
    const client = await ContainerdClient.connect(opts.socket, opts.namespace);
    try {
      const root = opts.contentRoot ?? await findContentRoot(client, logger);
      const blobDir = root === undefined ? undefined : await readableBlobDir(root, logger);
      if (opts.abortLeftUploads) await abortLeftUploads(client, logger);
      logger.info({ blobDir }, 'connected to containerd');
      return new ContainerdStore(client, logger, blobDir, opts.writeResponseMs ?? WRITE_RESPONSE_MS);
    } catch (err) {
      client.close(); // else each of --store auto's tries would leave one open
      throw err;
    }
  }

  get contentDir(): string | undefined {
    return this.blobDir;
  }

  async containerImages(): Promise<Set<string>> {
    const res = await this.client.unary<{ containers: { id: string; image: string }[] }>('containers', 'List', { filters: [] }, '');
    return new Set(res.containers.map((c) => c.image).filter(Boolean));
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    const res = await unlessNoBlob(this.client.unary<{ info: WireInfo }>('content', 'Info', { digest }, digest));
    return res && toBlobInfo(res.info);
  }

  async open(digest: string, range?: ByteRange): Promise<BlobReader> {
    // Info first even for direct reads: the file on disk is shared by all namespaces, the blob may not be ours.
    const info = await this.stat(digest);
    if (!info) throw new NotFoundError(`blob ${digest}`);
    checkRange(digest, info.size, range);
    const { start, end } = range ?? { start: 0, end: info.size - 1 };
    if (info.size === 0) return { size: 0, stream: Readable.from([]) };
    // Files are named by sha256 hex only; anything else (e.g. a sha512 blob pulled by others) goes over gRPC.
    const file = this.blobDir && isDigest(digest) ? await this.readFile(digest, start, end) : undefined;
    return { size: info.size, stream: file ?? this.readGrpc(digest, start, end) };
  }

  localPath(digest: string): string | undefined {
    // Shared by all namespaces: callers check with stat() that this namespace has the blob.
    return this.blobDir && isDigest(digest) ? join(this.blobDir, digestHex(digest)) : undefined;
  }

  beginUpload(digest?: string): Promise<Upload> {
    return ContainerdUpload.begin(digest, {
      client: this.client,
      logger: this.logger,
      stat: (digest) => this.stat(digest),
      blobAdded: (digest) => this.local.emit(LOCAL_EVENT, { type: 'blob-added', digest } satisfies StoreEvent),
      releases: this.releases,
      writing: this.writing,
      writeResponseMs: this.writeResponseMs,
    });
  }

  async delete(digest: string): Promise<boolean> {
    const deleted = await unlessNoBlob(this.client.unary('content', 'Delete', { digest }, digest).then(() => true));
    if (deleted) await releaseBlobs(this.client, new Set([digest]), this.writing, this.logger);
    return deleted ?? false;
  }

  async *blobs(): AsyncIterable<BlobInfo> {
    const call = this.client.serverStream<{ info: WireInfo[] }>('content', 'List', { filters: [] });
    try {
      for await (const res of call) for (const info of res.info) yield toBlobInfo(info);
    } catch (err) {
      throw this.client.error('content.List', err);
    } finally {
      call.cancel(); // the consumer may stop early
    }
  }

  events(signal: AbortSignal): AsyncIterable<StoreEvent> {
    return containerdEvents(this.client, this.local, signal, this.logger);
  }

  /** Once the lease releases started without waiting for them (by put(), by commits) are over. */
  settled(): Promise<void> {
    return this.releases.settled();
  }

  async close(): Promise<void> {
    this.local.emit(CLOSE_EVENT);
    await this.settled();
    this.client.close();
  }

  /** The blob file, or undefined when this one is not readable (then gRPC serves it). */
  private async readFile(digest: string, start: number, end: number): Promise<Readable | undefined> {
    const path = join(this.blobDir!, digestHex(digest));
    try {
      const file = await openFile(path, 'r');
      return file.createReadStream({ start, end, highWaterMark: READ_CHUNK });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // Deleted (or garbage collected) between Info and open.
      if (code === 'ENOENT') throw new NotFoundError(`blob ${digest}`);
      if (code !== 'EACCES') throw err;
      this.logger.warn({ path }, 'blob file not readable; reading it over gRPC');
      return undefined;
    }
  }

  private readGrpc(digest: string, start: number, end: number): Readable {
    const call = this.client.serverStream<{ data: Buffer }>('content', 'Read', { digest, offset: start, size: end - start + 1 });
    const client = this.client;
    return Readable.from((async function* () {
      try {
        for await (const res of call) yield res.data;
      } catch (err) {
        throw client.error(`content.Read ${digest}`, err);
      } finally {
        call.cancel(); // the consumer may stop early
      }
    })(), { objectMode: false });
  }
}

/** The content plugin exports its root directory through the introspection service. */
async function findContentRoot(client: ContainerdClient, logger: Logger): Promise<string | undefined> {
  try {
    const res = await client.unary<{ plugins: { exports: Record<string, string> }[] }>('introspection', 'Plugins',
      { filters: ['type==io.containerd.content.v1,id==content'] }, 'content plugin');
    const root = res.plugins[0]?.exports.root;
    if (!root) logger.warn('containerd did not say where its content root is; reading blobs over gRPC (slower)');
    return root || undefined;
  } catch (err) {
    logger.warn({ err }, 'could not ask containerd for its content root; reading blobs over gRPC (slower)');
    return undefined;
  }
}

/** `<root>/blobs/sha256` if this process may read it. */
async function readableBlobDir(root: string, logger: Logger): Promise<string | undefined> {
  const dir = join(root, 'blobs', 'sha256');
  // A fresh containerd creates blobs/sha256 with its first blob; until then, judge by the root.
  const probe = await access(dir).then(() => dir, () => root);
  try {
    await access(probe, fsConstants.R_OK | fsConstants.X_OK);
    return dir;
  } catch (err) {
    logger.warn({ dir: probe, err: (err as Error).message }, 'content directory not readable; reading blobs over gRPC (slower)');
    return undefined;
  }
}

/** The result, or undefined when there is no such blob: containerd answers InvalidArgument for a string that is no digest. */
async function unlessNoBlob<T>(call: Promise<T>): Promise<T | undefined> {
  try {
    return await unlessNotFound(call);
  } catch (err) {
    if (hasCode(err, Code.INVALID_ARGUMENT)) return undefined;
    throw err;
  }
}

function toBlobInfo(info: WireInfo): BlobInfo {
  return { digest: info.digest, size: info.size, labels: { ...info.labels } };
}
