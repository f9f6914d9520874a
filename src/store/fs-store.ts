// Embedded filesystem store, used where there is no containerd:
//   <root>/blobs/sha256/<hex>      verified blobs, published by rename
//   <root>/uploads/<id>            uploads in progress (cleared at start: a crash leaves nothing behind)
//   <root>/images/<sha256 of name>.json   image records (named by hash: names can be longer than a file name)
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { fsyncDir, removeLeftovers, writeAtomically } from '../util/atomic-file.js';
import { ChangeFeed } from './change-feed.js';
import { HashingUpload } from './hashing-upload.js';
import { OrphanSweeper } from './orphan-sweeper.js';
import { NotFoundError, UploadClosedError, asStoreFull, checkRange, type BlobInfo, type BlobReader, type ByteRange, type ImageRecord, type ImageStore, type Store, type StoreEvent, type Upload } from './store.js';
import { digestHex, isDigest } from '../oci/digest.js';
import { KeyedQueue } from '../util/keyed-queue.js';

const READ_CHUNK = 1 << 20;
const DEFAULT_ORPHAN_DELAY_MS = 10_000;

class FsUpload extends HashingUpload implements Upload {
  #closed = false;
  #handle?: FileHandle;

  constructor(
    readonly id: string,
    private readonly path: string,
    private readonly publish: (digest: string, tmp: string) => Promise<BlobInfo>,
    private readonly wrote: () => void,
    private readonly log: Logger,
  ) {
    super();
  }

  // A descriptor is held only while a request appends: idle sessions cost none.
  protected async opened(): Promise<void> {
    if (this.#closed) throw new UploadClosedError(this.id);
    this.#handle = await open(this.path, 'r+').catch((err) => {
      throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? new UploadClosedError(this.id) : err;
    });
  }

  protected async closed(): Promise<void> {
    const handle = this.#handle;
    this.#handle = undefined;
    await handle?.close();
  }

  protected async write(data: Buffer, position: number): Promise<number> {
    if (this.#closed || !this.#handle) throw new UploadClosedError(this.id);
    this.wrote();
    try {
      return (await this.#handle.write(data, 0, data.length, position)).bytesWritten;
    } catch (err) {
      throw asStoreFull(err, `writing upload ${this.id}`);
    }
  }

  async commit(expected: { digest: string; size?: number }): Promise<BlobInfo> {
    if (this.#closed) throw new UploadClosedError(this.id);
    const digest = this.verify(expected);
    this.#closed = true;
    const handle = await open(this.path, 'r+');
    try {
      // The hash covers what the kernel acknowledged; the file must hold exactly that, durably.
      const { size } = await handle.stat();
      if (size !== this.offset) throw new Error(`upload ${this.id} holds ${size} bytes on disk, ${this.offset} were written`);
      await handle.sync().catch((err) => { throw asStoreFull(err, `syncing upload ${this.id}`); });
    } finally {
      await handle.close();
    }
    this.wrote();
    return this.publish(digest, this.path);
  }

  async abort(): Promise<void> {
    this.#closed = true;
    await rm(this.path, { force: true }).catch((err: unknown) => this.log.warn({ err, upload: this.id }, 'could not remove an aborted upload\'s file'));
  }
}

export class FsStore implements Store {
  readonly kind = 'fs';
  readonly #feed = new ChangeFeed();
  readonly #blobDir: string;
  readonly #uploadDir: string;
  readonly #imageDir: string;

  readonly #orphans: OrphanSweeper;
  /** Commits of one digest, one after the other. */
  readonly #publishing = new KeyedQueue();
  /** When an upload last began, took bytes or ended: the orphan sweep waits for pushes to be quiet. */
  #lastWrite = 0;

  private constructor(readonly root: string, private readonly log: Logger, orphanDelayMs: number) {
    this.#orphans = new OrphanSweeper(this, orphanDelayMs, log, () => this.#lastWrite, join(root, 'orphans.json'));
    this.#blobDir = join(root, 'blobs', 'sha256');
    this.#uploadDir = join(root, 'uploads');
    this.#imageDir = join(root, 'images');
  }

  /** `orphanDelayMs`: how long after an image is deleted the blobs only it referenced are removed. */
  static async open(root: string, log: Logger, orphanDelayMs = DEFAULT_ORPHAN_DELAY_MS): Promise<FsStore> {
    const store = new FsStore(root, log, orphanDelayMs);
    await rm(store.#uploadDir, { recursive: true, force: true });
    await Promise.all([store.#blobDir, store.#uploadDir, store.#imageDir].map((d) => mkdir(d, { recursive: true })));
    await store.#migrateImageNames();
    // Image records and the list of blobs to free are replaced by rename: a crash may have left its temporary file.
    const left = (await removeLeftovers(store.#imageDir)) + (await removeLeftovers(root));
    if (left > 0) log.info({ files: left }, 'removed the temporary files of writes a crash cut off');
    await store.#orphans.restore();
    return store;
  }

  get contentDir(): string {
    return this.#blobDir;
  }

  #blobPath(digest: string): string {
    return join(this.#blobDir, digestHex(digest));
  }

  /** Named by a hash: image names may be longer than a file name can be. */
  #imagePath(name: string): string {
    return join(this.#imageDir, `${createHash('sha256').update(name).digest('hex')}.json`);
  }

  /** Records written under their encoded name by earlier versions move to their hashed name. */
  async #migrateImageNames(): Promise<void> {
    for (const file of await readdir(this.#imageDir)) {
      if (!file.endsWith('.json') || /^[0-9a-f]{64}\.json$/.test(file)) continue;
      const old = join(this.#imageDir, file);
      const record = await this.#readImage(old);
      if (record) await writeAtomically(this.#imagePath(record.name), JSON.stringify(record));
      await rm(old, { force: true });
    }
  }

  readonly images: ImageStore = {
    list: async () => {
      const files = (await readdir(this.#imageDir)).filter((f) => f.endsWith('.json'));
      const records = await Promise.all(files.map((f) => this.#readImage(join(this.#imageDir, f))));
      return records.filter((r): r is ImageRecord => r !== undefined);
    },
    get: (name) => this.#readImage(this.#imagePath(name)),
    put: async (record) => {
      const path = this.#imagePath(record.name);
      const existed = (await this.#readImage(path)) !== undefined;
      await writeAtomically(path, JSON.stringify(record)).catch((err) => { throw asStoreFull(err, `recording image ${record.name}`); });
      this.#feed.emit({ type: existed ? 'image-updated' : 'image-added', name: record.name });
    },
    delete: async (name) => {
      const path = this.#imagePath(name);
      const record = await this.#readImage(path);
      if (!record) return false;
      const removed = await this.#orphans.removing(record.target);
      const gone = await unlinkIfPresent(path).finally(removed);
      if (!gone) return false;
      this.#feed.emit({ type: 'image-removed', name });
      return true;
    },
  };

  async #readImage(path: string): Promise<ImageRecord | undefined> {
    try {
      return JSON.parse(await readFile(path, 'utf8')) as ImageRecord;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new Error(`reading image record ${path}: ${(err as Error).message}`, { cause: err });
    }
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    if (!isDigest(digest)) return undefined;
    try {
      const s = await stat(this.#blobPath(digest));
      return { digest, size: s.size, labels: {} };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  async open(digest: string, range?: ByteRange): Promise<BlobReader> {
    if (!isDigest(digest)) throw new NotFoundError(digest);
    // Opened here, not by the stream: a blob deleted meanwhile is NotFoundError, not a stream error naming its path.
    const handle = await open(this.#blobPath(digest), 'r').catch((err) => {
      throw (err as NodeJS.ErrnoException).code === 'ENOENT' ? new NotFoundError(digest) : err;
    });
    try {
      const { size } = await handle.stat();
      checkRange(digest, size, range);
      return { size, stream: handle.createReadStream({ highWaterMark: READ_CHUNK, start: range?.start, end: range?.end }) };
    } catch (err) {
      await handle.close();
      throw err;
    }
  }

  localPath(digest: string): string | undefined {
    return isDigest(digest) ? this.#blobPath(digest) : undefined;
  }

  async beginUpload(): Promise<Upload> {
    const id = randomUUID();
    const path = join(this.#uploadDir, id);
    await writeFile(path, '', { flag: 'wx' }).catch((err) => { throw asStoreFull(err, 'starting an upload'); });
    const wrote = () => (this.#lastWrite = Date.now());
    wrote();
    return new FsUpload(id, path, (digest, tmp) => this.#publish(digest, tmp), wrote, this.log);
  }

  /** Commits of one blob take turns: the first publishes it, the others find it there (one blob-added). */
  #publish(digest: string, tmp: string): Promise<BlobInfo> {
    return this.#publishing.run(digest, () => this.#publishOnce(digest, tmp));
  }

  async #publishOnce(digest: string, tmp: string): Promise<BlobInfo> {
    const target = this.#blobPath(digest);
    const existing = await this.stat(digest);
    if (existing && (await this.#intact(digest))) {
      await rm(tmp, { force: true });
      return existing;
    }
    if (existing) this.log.warn({ digest }, 'stored blob did not match its digest; replaced by the verified upload');
    await rename(tmp, target);
    await fsyncDir(this.#blobDir);
    this.log.debug({ digest }, 'blob stored');
    this.#feed.emit({ type: 'blob-added', digest });
    return (await this.stat(digest))!;
  }

  /** Whether the stored file re-hashes to its digest: asked only when the same blob is pushed again. */
  async #intact(digest: string): Promise<boolean> {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(this.#blobPath(digest), { highWaterMark: READ_CHUNK })) hash.update(chunk as Buffer);
    return `sha256:${hash.digest('hex')}` === digest;
  }

  async delete(digest: string): Promise<boolean> {
    if (!isDigest(digest)) return false;
    const existed = await unlinkIfPresent(this.#blobPath(digest));
    if (existed) this.#feed.emit({ type: 'blob-removed', digest });
    return existed;
  }

  async *blobs(): AsyncIterable<BlobInfo> {
    for (const hex of await readdir(this.#blobDir)) {
      const info = await this.stat(`sha256:${hex}`);
      if (info) yield info;
    }
  }

  events(signal: AbortSignal): AsyncIterable<StoreEvent> {
    return this.#feed.events(signal);
  }

  async close(): Promise<void> {
    this.#feed.close();
    await this.#orphans.close();
  }
}

async function unlinkIfPresent(path: string): Promise<boolean> {
  try {
    await unlink(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
