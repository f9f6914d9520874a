// In-memory store: the twin used by unit tests and by the simulation.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { ChangeFeed } from './change-feed.js';
import { HashingUpload } from './hashing-upload.js';
import { NotFoundError, UploadClosedError, checkRange, type BlobInfo, type BlobReader, type ByteRange, type ImageRecord, type ImageStore, type Store, type StoreEvent, type Upload } from './store.js';

interface Blob {
  data: Buffer;
  labels: Record<string, string>;
}

class MemoryUpload extends HashingUpload implements Upload {
  readonly id = randomUUID();
  #chunks: Buffer[] = [];
  #done = false;

  constructor(private readonly store: MemoryStore) {
    super();
  }

  protected async write(data: Buffer): Promise<number> {
    if (this.#done) throw new UploadClosedError(this.id);
    this.#chunks.push(Buffer.from(data));
    return data.length;
  }

  async commit(expected: { digest: string; size?: number }, labels: Record<string, string> = {}): Promise<BlobInfo> {
    // After abort the chunks are gone: committing would publish an empty blob under the digest.
    if (this.#done) throw new UploadClosedError(this.id);
    const digest = this.verify(expected);
    this.#done = true;
    return this.store.put(digest, Buffer.concat(this.#chunks), labels);
  }

  async abort(): Promise<void> {
    this.#done = true;
    this.#chunks = [];
  }
}

export class MemoryStore implements Store {
  readonly kind = 'memory';
  readonly #blobs = new Map<string, Blob>();
  readonly #images = new Map<string, ImageRecord>();
  readonly #feed = new ChangeFeed();

  readonly images: ImageStore = {
    list: async () => [...this.#images.values()].map((r) => structuredClone(r)),
    get: async (name) => structuredClone(this.#images.get(name)),
    put: async (record) => {
      const existed = this.#images.has(record.name);
      this.#images.set(record.name, structuredClone(record));
      this.#feed.emit({ type: existed ? 'image-updated' : 'image-added', name: record.name });
    },
    delete: async (name) => {
      const existed = this.#images.delete(name);
      if (existed) this.#feed.emit({ type: 'image-removed', name });
      return existed;
    },
  };

  /** Publishes a verified blob; used by uploads. */
  put(digest: string, data: Buffer, labels: Record<string, string>): BlobInfo {
    const existing = this.#blobs.get(digest);
    if (existing) Object.assign(existing.labels, labels);
    else {
      this.#blobs.set(digest, { data, labels: { ...labels } });
      this.#feed.emit({ type: 'blob-added', digest });
    }
    return { digest, size: data.length, labels: { ...(existing ?? this.#blobs.get(digest)!).labels } };
  }

  async stat(digest: string): Promise<BlobInfo | undefined> {
    const blob = this.#blobs.get(digest);
    return blob && { digest, size: blob.data.length, labels: { ...blob.labels } };
  }

  async open(digest: string, range?: ByteRange): Promise<BlobReader> {
    const blob = this.#blobs.get(digest);
    if (!blob) throw new NotFoundError(digest);
    checkRange(digest, blob.data.length, range);
    const data = range ? blob.data.subarray(range.start, range.end + 1) : blob.data;
    return { size: blob.data.length, stream: Readable.from([data]) };
  }

  localPath(): undefined {
    return undefined;
  }

  async beginUpload(): Promise<Upload> {
    return new MemoryUpload(this);
  }

  async delete(digest: string): Promise<boolean> {
    const existed = this.#blobs.delete(digest);
    if (existed) this.#feed.emit({ type: 'blob-removed', digest });
    return existed;
  }

  async *blobs(): AsyncIterable<BlobInfo> {
    for (const [digest, blob] of this.#blobs) yield { digest, size: blob.data.length, labels: { ...blob.labels } };
  }

  events(signal: AbortSignal): AsyncIterable<StoreEvent> {
    return this.#feed.events(signal);
  }

  async close(): Promise<void> {
    this.#feed.close();
  }
}
