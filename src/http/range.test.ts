import { describe, expect, it } from 'vitest';
import { parseRange, RangeNotSatisfiableError } from './range.js';

describe('byte ranges', () => {
  it('parses the forms clients send', () => {
    expect(parseRange('bytes=0-99', 1000)).toEqual({ start: 0, end: 99 });
    expect(parseRange('bytes=900-', 1000)).toEqual({ start: 900, end: 999 });
    expect(parseRange('bytes=-10', 1000)).toEqual({ start: 990, end: 999 });
    expect(parseRange('bytes=990-5000', 1000)).toEqual({ start: 990, end: 999 });
    expect(parseRange('Bytes=0-0', 1000)).toEqual({ start: 0, end: 0 });
    expect(parseRange(undefined, 1000)).toBeUndefined();
  });

  it('answers 416 for a range outside the blob', () => {
    for (const bad of ['bytes=1000-', 'bytes=2000-3000', 'bytes=-0']) {
      expect(() => parseRange(bad, 1000), bad).toThrow(RangeNotSatisfiableError);
    }
  });

  it('ignores what RFC 9110 lets a server ignore: the whole blob is sent', () => {
    for (const ignored of ['bytes=0-1,5-6', 'items=0-1', 'bytes=-', 'bytes=5-4', 'bytes=a-b']) {
      expect(parseRange(ignored, 1000), ignored).toBeUndefined();
    }
  });
});
