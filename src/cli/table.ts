// Plain aligned columns for human output.
export function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return all.map((r) => r.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd()).join('\n');
}

export function ms(value: number | undefined): string {
  return value === undefined ? '-' : `${value < 10 ? value.toFixed(1) : Math.round(value)} ms`;
}
