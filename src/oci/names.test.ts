import { describe, expect, it } from 'vitest';
import { isImageName, NameInvalidError, parseImageName, repositoryKey, wireName } from './names.js';

describe('repository names', () => {
  it('maps wire names to the names docker and ctr use', () => {
    expect(repositoryKey('app')).toBe('docker.io/library/app');
    expect(repositoryKey('org/app')).toBe('docker.io/org/app');
    expect(repositoryKey('ghcr.io/org/app')).toBe('ghcr.io/org/app');
    expect(repositoryKey('localhost:5000/app')).toBe('localhost:5000/app');
    expect(repositoryKey('org/app', 'ghcr.io')).toBe('ghcr.io/org/app');
    expect(repositoryKey('app', 'docker.io')).toBe('docker.io/library/app');
  });

  it('maps them back for tags lists and the catalog', () => {
    for (const name of ['app', 'org/app', 'ghcr.io/org/app', 'a/b/c', 'docker.io/my.team/app']) expect(wireName(repositoryKey(name))).toBe(name);
    // A Docker Hub namespace with a dot is one of this registry's names too: its pushes' gossip must pass.
    expect(isImageName('docker.io/my.team/app:1')).toBe(true);
  });

  it('rejects what the spec does not allow', () => {
    for (const bad of ['App', 'a/../b', 'a//b', '-a', 'a-', 'a/', '', 'a'.repeat(256), 'a b']) {
      expect(() => repositoryKey(bad), bad).toThrow(NameInvalidError);
    }
    expect(() => repositoryKey('app', 'not a host')).toThrow(NameInvalidError);
  });

  it('splits store image names', () => {
    expect(parseImageName('docker.io/library/app:1')).toEqual({ repo: 'docker.io/library/app', tag: '1' });
    expect(parseImageName('localhost:5000/app:1')).toEqual({ repo: 'localhost:5000/app', tag: '1' });
    expect(parseImageName('docker.io/library/app@sha256:ab')).toEqual({ repo: 'docker.io/library/app', digest: 'sha256:ab' });
  });
});
