import { describe, expect, it } from 'vitest';
import { storeImageName } from './disk-api.js';

describe('storeImageName', () => {
  it('names what a user typed as the store does', () => {
    expect(storeImageName('app:1')).toBe('docker.io/library/app:1');
    expect(storeImageName('app')).toBe('docker.io/library/app:latest');
    expect(storeImageName('registry.example:5000/team/app:2')).toBe('registry.example:5000/team/app:2');
    expect(storeImageName(`app@sha256:${'a'.repeat(64)}`)).toBe(`docker.io/library/app@sha256:${'a'.repeat(64)}`);
    expect(() => storeImageName('Not A Name')).toThrow(/invalid repository name/);
  });
});
