// Bandwidth limits of the node, as token buckets (limiter's hierarchical TokenBucket) shared by every transfer:
// `upload` for what the data plane sends, `download` for what comes from peers and upstream registries, and
// `replication` for the background copies alone. A replication's bytes take tokens from its own bucket and from
// the download bucket, so that replication never runs above its limit and a pull a container waits for gets the
// rest of the download limit. Limits change at run time (meshctl limit).
import { TokenBucket } from 'limiter';
import { Counter } from 'prom-client';
import type { UpstreamSource } from './pull-through.js';

export type Traffic = 'upload' | 'download' | 'replication';

/** Bytes per second; absent: no limit. */
export type BandwidthLimits = Partial<Record<Traffic, number>>;

/** A bucket holds a tenth of a second of its rate (at least a chunk), so bursts stay short. */
const MIN_BUCKET = 256 << 10;

export const limiterWaitSeconds = new Counter({
  name: 'layermesh_limiter_wait_seconds_total',
  help: 'Time transfers waited for a bandwidth limit, by limit: upload, download, replication',
  labelNames: ['limit'] as const,
});

function bucket(rate: number | undefined, parentBucket?: TokenBucket): TokenBucket | undefined {
  if (rate === undefined) return parentBucket;
  return new TokenBucket({ bucketSize: Math.max(MIN_BUCKET, Math.ceil(rate / 10)), tokensPerInterval: rate, interval: 'second', parentBucket });
}

export class Bandwidth {
  #limits: BandwidthLimits = {};
  #buckets: Partial<Record<Traffic, TokenBucket>> = {};

  constructor(limits: BandwidthLimits = {}) {
    this.set(limits);
  }

  get limits(): BandwidthLimits {
    return { ...this.#limits };
  }

  /** New limits from now on; transfers waiting on an old bucket finish that wait first. */
  set(limits: BandwidthLimits): void {
    for (const [k, v] of Object.entries(limits)) {
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new Error(`${k} limit must be a positive number of bytes per second, not ${v}`);
    }
    this.#limits = { ...limits };
    const download = bucket(limits.download);
    this.#buckets = {
      upload: bucket(limits.upload),
      download,
      replication: limits.replication === undefined ? download : bucket(limits.replication, download),
    };
  }

  /** The chunks of `source`, each let through once the limit of `traffic` allows its bytes. */
  async *throttle(traffic: Traffic, source: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
    for await (const chunk of source) {
      await this.take(traffic, chunk.length);
      yield chunk;
    }
  }

  /** Waits until `bytes` of `traffic` may go. */
  async take(traffic: Traffic, bytes: number): Promise<void> {
    const b = this.#buckets[traffic];
    if (!b) return;
    const started = performance.now();
    for (let left = bytes; left > 0; left -= b.bucketSize) await b.removeTokens(Math.min(left, b.bucketSize));
    const waited = performance.now() - started;
    // Without a limit of its own, replication waits on the download limit: the wait is that limit's.
    const limit = traffic === 'replication' && this.#limits.replication === undefined ? 'download' : traffic;
    if (waited >= 1) limiterWaitSeconds.inc({ limit }, waited / 1000);
  }
}

/** An upstream registry whose blob bodies come within the download limit. */
export function limitedUpstream(upstream: UpstreamSource, bandwidth: Bandwidth): UpstreamSource {
  return {
    resolveTag: (repo, tag) => upstream.resolveTag(repo, tag),
    open: async (repo, digest, manifest) => {
      const opened = await upstream.open(repo, digest, manifest);
      return opened && { ...opened, body: bandwidth.throttle('download', opened.body) };
    },
  };
}
