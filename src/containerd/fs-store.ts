// Embedded filesystem store, used where there is no containerd:
//   <root>/blobs/sha256/<hex>      verified blobs, published by rename
//   <root>/uploads/<id>            uploads in progress (cleared at start: a crash leaves nothing behind)
//   <root>/images/<name>.json      image records
import { randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeAtomically } from '../util/atomic-file.js';
import { ChangeFeed } from './change-feed.js';
import { HashingUpload } from './hashing-upload.js';
import {
  NotFoundError,
  digestHex,
  isDigest,
  type BlobInfo,
  type BlobReader,
  type ByteRange,
  type ImageRecord,
  type ImageStore,
  type Store,
  type StoreEvent,
  type Upload,
} from './store.js';

const READ_CHUNK = 1 << 20;

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

class FsUpload extends HashingUpload implements Upload {
  #closed = false;

  constructor(
    readonly id: string,
    private readonly path: string,
    private readonly handle: FileHandle,
    private readonly publish: (digest: string, tmp: string) => Promise<BlobInfo>,
  ) {
    super();
  }

  protected async write(data: Buffer): Promise<void> {
    if (this.#closed) throw new Error(`upload ${this.id} is closed`);
    await this.handle.write(data, 0, data.length, this.offset);
  }

  async commit(expected: { digest: string; size?: number }): Promise<BlobInfo> {
    const digest = this.verify(expected);
    await this.handle.sync();
    await this.#close();
    return this.publish(digest, this.path);
  }

  async abort(): Promise<void> {
    await this.#close();
    await rm(this.path, { force: true });
  }

  async #close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.handle.close();
  }
}

export class FsStore implements Store {
  readonly kind = 'fs';
  readonly #feed = new ChangeFeed();
  readonly #blobDir: string;
  readonly #uploadDir: string;
  readonly #imageDir: string;

  private constructor(readonly root: string, private readonly log: Logger) {
    this.#blobDir = join(root, 'blobs', 'sha256');
    this.#uploadDir = join(root, 'uploads');
    this.#imageDir = join(root, 'images');
  }

  static async open(root: string, log: Logger): Promise<FsStore> {
    const store = new FsStore(root, log);
    await rm(store.#uploadDir, { recursive: true, force: true });
    await Promise.all([store.#blobDir, store.#uploadDir, store.#imageDir].map((d) => mkdir(d, { recursive: true })));
    return store;
  }

  #blobPath(digest: string): string {
    return join(this.#blobDir, digestHex(digest));
  }

  #imagePath(name: string): string {
    return join(this.#imageDir, `${encodeURIComponent(name)}.json`);
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
      await writeAtomically(path, JSON.stringify(record));
      this.#feed.emit({ type: existed ? 'image-updated' : 'image-added', name: record.name });
    },
    delete: async (name) => {
      const existed = await unlinkIfPresent(this.#imagePath(name));
      if (existed) this.#feed.emit({ type: 'image-removed', name });
      return existed;
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
    const info = await this.stat(digest);
    if (!info) throw new NotFoundError(digest);
    const stream = createReadStream(this.#blobPath(digest), { highWaterMark: READ_CHUNK, start: range?.start, end: range?.end });
    return { size: info.size, stream };
  }

  localPath(digest: string): string | undefined {
    return isDigest(digest) ? this.#blobPath(digest) : undefined;
  }

  async beginUpload(): Promise<Upload> {
    const id = randomUUID();
    const path = join(this.#uploadDir, id);
    const handle = await open(path, 'wx');
    return new FsUpload(id, path, handle, (digest, tmp) => this.#publish(digest, tmp));
  }

  async #publish(digest: string, tmp: string): Promise<BlobInfo> {
    const target = this.#blobPath(digest);
    const existing = await this.stat(digest);
    if (existing) {
      await rm(tmp, { force: true });
      return existing;
    }
    await rename(tmp, target);
    await fsyncDir(this.#blobDir);
    this.log.debug({ digest }, 'blob stored');
    this.#feed.emit({ type: 'blob-added', digest });
    return (await this.stat(digest))!;
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

  async close(): Promise<void> {}
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
