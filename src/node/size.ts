// Human sizes in configuration: 512, 64KiB, 20GiB, 1.5GB.
const UNITS: Record<string, number> = { '': 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3, t: 1e12, tb: 1e12, tib: 1024 ** 4 };

/** `option`, when given, names where the text came from in the error; `min`: the least size it may say. */
export function parseSize(text: string, option?: string, min = 0): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m ? UNITS[m[2].toLowerCase()] : undefined;
  const where = option ? `${option}: ` : '';
  if (!m || unit === undefined) throw new Error(`${where}not a size: "${text}" (examples: 512, 64KiB, 20GiB)`);
  const size = Math.floor(Number(m[1]) * unit);
  if (size < min) throw new Error(`${where}${text} is too small (at least ${min} bytes)`);
  return size;
}

/** Durations: 90s, 15m, 2h, 500ms, or plain seconds; at least `minMs` (a period of 0 would spin). */
export function parseDuration(text: string, option: string, minMs = 0): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(text);
  if (!m) throw new Error(`${option}: not a duration: "${text}" (examples: 90s, 15m, 2h)`);
  const scale = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] ?? 's']!;
  const ms = Math.floor(Number(m[1]) * scale);
  if (ms < minMs) throw new Error(`${option}: ${text} is too short (at least ${minMs} ms)`);
  return ms;
}

/** A positive whole number given as an option. */
export function parseCount(text: string, option: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${option} must be a whole number of at least 1, not "${text}"`);
  return n;
}
