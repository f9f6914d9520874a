import { describe, expect, it } from 'vitest';
import { printable, table } from './table.js';

describe('human output', () => {
  it('shows what other parties named (members, images) with its control characters escaped, so none reaches the terminal', () => {
    const name = 'web1\x1b]52;c;ZXZpbA==\x07\x1b[2J';
    const out = table(['NAME', 'RTT'], [[name, '2 ms']]);
    expect(out).not.toMatch(/[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
    expect(out).toContain('web1\\x1b]52;c;ZXZpbA==\\x07\\x1b[2J');
    expect(out.split('\n')[0]).toMatch(/^NAME {2,}RTT$/);
    expect(printable('a\nb\u009bc')).toBe('a\\x0ab\\x9bc');
  });
});
