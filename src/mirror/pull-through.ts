// What no peer holds, from the image's own registry (`--upstream`), into the same spool as bytes from a
// peer: verified, shared and stored exactly like them.
import type { Logger } from 'pino';
import type { Descriptor } from '../oci/digest.js';
import { MAX_MANIFEST_BYTES } from '../oci/limits.js';
import type { RequestedIn } from '../store/store.js';
import { DigestMismatchError } from '../store/store.js';
import { SpoolWriteError, type Spool } from './spool.js';
import type { UpstreamBody } from './upstream.js';
import type { LogRateLimiter } from '../util/log-rate-limiter.js';

/** What the mirror needs of an upstream registry (see upstream.ts). */
export interface UpstreamSource {
  resolveTag(repo: string, tag: string): Promise<Descriptor | undefined>;
  /** Undefined when the upstream does not have it, or refuses it; throws when the upstream cannot be reached. */
  open(repo: string, digest: string, manifest: boolean): Promise<UpstreamBody | undefined>;
}

/**
 * Receives the blob from the upstream registry into the spool, verified; false when it cannot. `requested`: the
 * repositories clients asked for it in, as they join: each asked in turn until one gives it (one client's private
 * repository, or a manifest's request for a layer's digest, must not fail the others'), none more once the
 * upstream cannot be reached (each would wait its timeout).
 */
export interface PullThroughDeps {
  log: Logger;
  /** Failures once begun, told a line a minute per registry and kind. */
  failures: LogRateLimiter;
  /** Throws when `size` bytes would not fit in the spool: none of them is read then. */
  room(size: number): Promise<void>;
}

export async function pullThrough(
  spool: Spool, upstream: UpstreamSource | undefined, requested: () => RequestedIn[], { log, failures, room }: PullThroughDeps,
): Promise<boolean> {
  if (!upstream) return false;
  const { digest } = spool;
  let opened: UpstreamBody | undefined;
  let requestedIn: RequestedIn | undefined;
  // A peer transfer that broke part-way: the upstream sends the blob whole, from the start.
  if (spool.received > 0 && requested().length > 0) await spool.restart();
  for (let i = 0; !opened && (requestedIn = requested()[i]); i++) {
    try {
      opened = await upstream.open(requestedIn.repo, digest, requestedIn.manifest === true);
    } catch (err) {
      // The upstream logged why (a line a minute per registry): a client can make this happen per request.
      log.debug({ digest, repo: requestedIn.repo, err: (err as Error).message }, 'pulling through from the upstream registry failed');
      return false;
    }
  }
  if (!opened || !requestedIn) return false;
  const limit = requestedIn.manifest ? MAX_MANIFEST_BYTES : Infinity;
  try {
    if (opened.size !== undefined) {
      spool.refuseOver(opened.size);
      await room(opened.size);
      spool.setSize(opened.size);
    }
    for await (const chunk of opened.body) {
      await spool.append(chunk);
      if (spool.received > Math.min(limit, opened.size ?? Infinity)) throw new Error('the upstream sent more bytes than it stated');
    }
    await spool.flush();
    spool.verify();
  } catch (err) {
    if (err instanceof SpoolWriteError) throw err; // this node's disk, not the upstream: the transfer ends
    // Nothing is kept: the spool is removed, and its readers never see the last byte.
    const mismatch = err instanceof DigestMismatchError;
    const msg = mismatch ? 'the upstream registry sent bytes that do not match the digest' : 'pulling through from the upstream registry failed';
    // A local reader may name a registry it runs, and have it fail every request: a line a minute per registry.
    const admitted = failures.admit(`${requestedIn.repo.split('/')[0]} ${msg}`);
    if (admitted) {
      log.warn({ digest, repo: requestedIn.repo, err: (err as Error).message, ...(mismatch && { actual: err.actual }), suppressed: admitted.suppressed + admitted.suppressedOthers }, msg);
    }
    return false;
  } finally {
    opened.cancel();
  }
  log.info({ digest, repo: requestedIn.repo, bytes: spool.written }, 'pulled through from the upstream registry');
  return true;
}
