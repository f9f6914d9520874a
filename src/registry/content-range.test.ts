import { describe, expect, it } from 'vitest';
import { parseContentRange } from './content-range.js';

describe('upload chunks', () => {
  it('parses upload Content-Range with or without the bytes prefix', () => {
    expect(parseContentRange('0-99')).toEqual({ start: 0, end: 99 });
    expect(parseContentRange('bytes 100-199/*')).toEqual({ start: 100, end: 199 });
    expect(() => parseContentRange('9-1')).toThrow(expect.objectContaining({ status: 416 }));
  });
});
