// One host's push: blobs the remote lacks (HEAD first, then a mount attempt that doubles as the upload's
// start), several at a time; then manifests, children before parents, the root by tag last.
import { Transform, type Readable } from 'node:stream';
import { PusshError } from './errors.js';
import type { RegistryClient } from './registry-client.js';
import type { PlannedBlob, PushPlan } from './plan.js';
import type { ImageSource } from './source.js';

export type BlobOutcome = 'sent' | 'exists' | 'mounted';

/** What the push tells the progress display. */
export interface PushListener {
  blobStart(blob: PlannedBlob): void;
  blobBytes(blob: PlannedBlob, bytes: number): void;
  blobDone(blob: PlannedBlob, outcome: BlobOutcome): void;
}

export interface PushTarget {
  /** Repository on the wire: `app`, `org/app`. */
  repo: string;
  /** Tag for the root; without one the root is pushed by digest. */
  tag?: string;
  /** Sent as `x-layermesh-replicate` with the root manifest, and only with it. */
  replicate?: string;
}

export interface PushStats {
  layers: { total: number; sent: number; skipped: number; mounted: number };
  blobsSent: number;
  /** Blob and manifest bytes sent. */
  bytesSent: number;
  manifestsSent: number;
}

export const REPLICATE_HEADER = 'x-layermesh-replicate';

/**
 * A blob's bytes from the source on their way to the upload, counted. A source that fails, or holds more or
 * fewer bytes than the blob's descriptor says (a truncated file would otherwise leave the upload waiting for
 * the rest), fails the upload with `failure()`: the local image's fault, not the connection's.
 */
function localBody(source: Readable, { digest, size }: { digest: string; size: number }, onBytes: (n: number) => void) {
  let failure: Error | undefined;
  let seen = 0;
  const fail = (err: Error) => (failure ??= new PusshError('failed', `reading blob ${digest} of the local image: ${err.message}`, { cause: err }));
  const body = new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > size) return done(fail(new Error(`it holds more than the ${size} bytes its descriptor says`)));
      onBytes(chunk.length);
      done(null, chunk);
    },
    flush(done) {
      done(seen === size ? null : fail(new Error(`it holds ${seen} bytes, its descriptor says ${size}`)));
    },
  });
  source.on('error', (err) => body.destroy(fail(err)));
  body.once('close', () => source.destroy());
  return { body: source.pipe(body), failure: () => failure };
}

/** Runs fn over items, at most `limit` at once; the first failure stops new work, calls onFailure, and is rethrown. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>, onFailure: () => void): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (err) {
        // Later failures are mostly the abort that this first one causes.
        if (!failure) {
          failure = { err };
          onFailure();
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.err;
}

export async function pushImage(client: RegistryClient, source: ImageSource, plan: PushPlan, target: PushTarget,
  opts: { parallel: number; listener: PushListener }): Promise<PushStats> {
  const stats: PushStats = {
    layers: { total: plan.blobs.filter((b) => b.kind === 'layer').length, sent: 0, skipped: 0, mounted: 0 },
    blobsSent: 0,
    bytesSent: 0,
    manifestsSent: 0,
  };
  const abort = new AbortController();
  const { listener } = opts;

  const sendBlob = async (blob: PlannedBlob) => {
    const { digest, size } = blob.descriptor;
    listener.blobStart(blob);
    let outcome: BlobOutcome;
    if (await client.hasBlob(target.repo, digest, abort.signal)) {
      outcome = 'exists';
    } else {
      const started = await client.startUpload(target.repo, { digest, from: target.repo }, abort.signal);
      if (started.mounted) {
        outcome = 'mounted';
      } else {
        let local: ReturnType<typeof localBody> | undefined;
        try {
          local = localBody(await source.open(digest), blob.descriptor, (n) => {
            stats.bytesSent += n;
            listener.blobBytes(blob, n);
          });
          await client.putBlob(started.location, digest, size, local.body, abort.signal);
        } catch (err) {
          local?.body.destroy();
          await client.cancelUpload(started.location);
          throw local?.failure() ?? err;
        }
        outcome = 'sent';
        stats.blobsSent++;
      }
    }
    if (blob.kind === 'layer') stats.layers[outcome === 'exists' ? 'skipped' : outcome]++;
    listener.blobDone(blob, outcome);
  };

  // Largest first: the long uploads start at once and the small ones fill in around them.
  const order = [...plan.blobs].sort((a, b) => b.descriptor.size - a.descriptor.size);
  await eachLimit(order, opts.parallel, sendBlob, () => abort.abort());

  const root = plan.manifests[plan.manifests.length - 1];
  for (const m of plan.manifests.slice(0, -1)) {
    if (await client.hasManifest(target.repo, m.descriptor.digest)) continue;
    await client.putManifest(target.repo, m.descriptor.digest, m.body, m.descriptor.mediaType);
    stats.manifestsSent++;
    stats.bytesSent += m.body.length;
  }
  const headers = target.replicate ? { [REPLICATE_HEADER]: target.replicate } : {};
  await client.putManifest(target.repo, target.tag ?? root.descriptor.digest, root.body, root.descriptor.mediaType, headers);
  stats.manifestsSent++;
  stats.bytesSent += root.body.length;
  return stats;
}
