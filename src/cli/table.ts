// Plain aligned columns for human output.

/**
 * Text from another party (a member's name, an image name from gossip, a remote registry's error), safe to
 * print on a terminal: control characters, which could move the cursor, retitle the window or write the
 * clipboard (escape sequences), are shown as \xNN instead.
 */
export function printable(text: string): string {
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows.map((r) => r.map((c) => printable(c ?? '')))];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function ms(value: number | undefined): string {
  return value === undefined ? '-' : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}

/** How long ago `ms` (epoch milliseconds) was, roughly: `12s`, `5m`, `3h`, `2d`; `in 3s` when it lies ahead (clock skew). */
export function age(ms: number, now = Date.now()): string {
  const seconds = Math.round(Math.abs(now - ms) / 1000);
  const text = seconds < 120 ? `${seconds}s` : seconds < 7200 ? `${Math.round(seconds / 60)}m` : seconds < 172_800 ? `${Math.round(seconds / 3600)}h` : `${Math.round(seconds / 86_400)}d`;
  return now >= ms ? `${text} ago` : `in ${text}`;
}
