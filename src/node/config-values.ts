// Option values meshd checks and turns into its configuration's (config.ts): labels, endpoints, watermarks, counts.
import { multiaddr } from '@multiformats/multiaddr';
import { checkWatermarks, parseWatermark, type Watermark } from './eviction.js';

export function diskWatermarks(high: string | undefined, low: string | undefined): { high: Watermark; low: Watermark } | undefined {
  const marks = { high: high ? parseWatermark(high, '--disk-high') : undefined, low: low ? parseWatermark(low, '--disk-low') : undefined };
  checkWatermarks(marks.high, marks.low);
  return marks.high && marks.low ? { high: marks.high, low: marks.low } : undefined;
}

export function parseMinCopies(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`--min-copies must be a whole number, not "${text}"`);
  return n;
}

export function parseLabels(pairs: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new Error(`--label expects key=value, got "${pair}"`);
    labels[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return labels;
}

export function parseEndpoints(pairs: string[]): Record<string, string> {
  const endpoints: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    const url = pair.slice(eq + 1);
    // No user:password@: credentials belong in --upstream-auth, and a URL is logged with every warning about it.
    if (eq <= 0 || !/^https?:\/\/[^/@]+\/?$/.test(url)) throw new Error(`--upstream-endpoint expects REGISTRY=http(s)://HOST[:PORT] (credentials go in --upstream-auth), got "${pair.replace(/\/\/[^/]*@/, '//…@')}"`);
    endpoints[pair.slice(0, eq)] = url;
  }
  return endpoints;
}

/** Splits HOST:PORT, accepting [v6]:port. */
export function splitHostPort(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(addr);
  if (!m || Number(m[3]) > 65535) throw new Error(`expected HOST:PORT, got "${addr}"`);
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port: Number(m[3]) };
}

/** The listeners' and peers' addresses, checked as meshd starts: a mistyped one is the configuration's error. */
export function checkAddresses(o: { registryAddr: string; peerAddr: string; p2pListen: string[]; bootstrap: string[] }): void {
  for (const [flag, addr] of [['--registry-addr', o.registryAddr], ['--peer-addr', o.peerAddr]]) {
    try {
      splitHostPort(addr);
    } catch (err) {
      throw new Error(`${flag}: ${(err as Error).message}`);
    }
  }
  for (const [flag, addrs] of [['--p2p-listen', o.p2pListen], ['--bootstrap', o.bootstrap]] as const) {
    for (const addr of addrs) {
      try {
        multiaddr(addr);
      } catch (err) {
        throw new Error(`${flag}: "${addr}" is not a multiaddr, e.g. /ip4/10.0.0.1/tcp/4001 (${(err as Error).message})`);
      }
    }
  }
}
