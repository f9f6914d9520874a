// Option values meshd checks and turns into its configuration's (config.ts): labels, endpoints, watermarks, counts.
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
    if (eq <= 0 || !/^https?:\/\/[^/]+\/?$/.test(url)) throw new Error(`--upstream-endpoint expects REGISTRY=http(s)://HOST[:PORT], got "${pair}"`);
    endpoints[pair.slice(0, eq)] = url;
  }
  return endpoints;
}
