// One host's push: blobs the remote lacks (HEAD first, then a mount attempt that doubles as the upload's
// start), several at a time; then manifests, children before parents, the root by tag last.
import { Transform, type Readable } from 'node:stream';
import { DEFAULT_PATIENCE, whileBusy, type Patience } from './busy.js';
import { PusshError } from './errors.js';
import type { RegistryClient } from './registry-client.js';
import type { PlannedBlob, PushPlan } from './plan.js';
import type { ImageSource } from './source.js';

export type BlobOutcome = 'sent' | 'exists' | 'mounted';

/** What the push tells the progress display. */
export interface PushListener {
  note(message: string): void;
  blobStart(blob: PlannedBlob): void;
  /** Bytes sent of the blob; negative when an attempt that failed is taken back. */
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
  opts: { parallel: number; listener: PushListener; patience?: Patience }): Promise<PushStats> {
  const stats: PushStats = {
    layers: { total: plan.blobs.filter((b) => b.kind === 'layer').length, sent: 0, skipped: 0, mounted: 0 },
    blobsSent: 0,
    bytesSent: 0,
    manifestsSent: 0,
  };
  const abort = new AbortController();
  const { listener } = opts;
  const patiently = <T>(what: string, call: () => Promise<T>) => whileBusy(call, opts.patience ?? DEFAULT_PATIENCE, {
    signal: abort.signal,
    waiting: (err, ms) => listener.note(`${what}: the registry is busy (${err.status} ${err.code}); trying again in ${(ms / 1000).toFixed(1)} s`),
  });

  /** One attempt at a blob: what became of it, and the bytes it sent (taken back if a later step fails). */
  const tryBlob = async (blob: PlannedBlob): Promise<BlobOutcome> => {
    const { digest, size } = blob.descriptor;
    let outcome: BlobOutcome;
    if (await client.hasBlob(target.repo, digest, abort.signal)) {
      outcome = 'exists';
    } else {
      const started = await client.startUpload(target.repo, { digest, from: target.repo }, abort.signal);
      if (started.mounted) {
        outcome = 'mounted';
      } else {
        let local: ReturnType<typeof localBody> | undefined;
        let sent = 0;
        try {
          local = localBody(await source.open(digest), blob.descriptor, (n) => {
            sent += n;
            listener.blobBytes(blob, n);
          });
          await client.putBlob(started.location, digest, size, local.body, abort.signal);
        } catch (err) {
          local?.body.destroy();
          listener.blobBytes(blob, -sent);
          await client.cancelUpload(started.location);
          throw local?.failure() ?? err;
        }
        outcome = 'sent';
        stats.blobsSent++;
        stats.bytesSent += sent;
      }
    }
    return outcome;
  };

  const sendBlob = async (blob: PlannedBlob) => {
    listener.blobStart(blob);
    const outcome = await patiently(`blob ${blob.descriptor.digest}`, () => tryBlob(blob));
    if (blob.kind === 'layer') stats.layers[outcome === 'exists' ? 'skipped' : outcome]++;
    listener.blobDone(blob, outcome);
  };

  // Largest first: the long uploads start at once and the small ones fill in around them.
  const order = [...plan.blobs].sort((a, b) => b.descriptor.size - a.descriptor.size);
  await eachLimit(order, opts.parallel, sendBlob, () => abort.abort());

  const root = plan.manifests[plan.manifests.length - 1];
  for (const m of plan.manifests.slice(0, -1)) {
    const what = `manifest ${m.descriptor.digest}`;
    if (await patiently(what, () => client.hasManifest(target.repo, m.descriptor.digest))) continue;
    await patiently(what, () => client.putManifest(target.repo, m.descriptor.digest, m.body, m.descriptor.mediaType));
    stats.manifestsSent++;
    stats.bytesSent += m.body.length;
  }
  const headers = target.replicate ? { [REPLICATE_HEADER]: target.replicate } : {};
  const reference = target.tag ?? root.descriptor.digest;
  await patiently(`manifest ${target.repo}:${reference}`, () => client.putManifest(target.repo, reference, root.body, root.descriptor.mediaType, headers));
  stats.manifestsSent++;
  stats.bytesSent += root.body.length;
  return stats;
}
