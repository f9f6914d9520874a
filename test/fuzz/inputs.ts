// Odd pieces of requests: repository names, digests, tags, query strings and headers, as they go on the wire.
import type { Rng } from './prng.js';
import type { World } from './world.js';

/** Percent signs not followed by two hex digits, or raw bytes outside ASCII: not a valid URI. */
export function malformedUri(path: string): boolean {
  return /%(?![0-9a-fA-F]{2})/.test(path) || /[^\x21-\x7e]/.test(path);
}

export const MANIFEST_TYPES = [
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
];

/** A repository name; `write` leaves out the repository that must survive the run. */
export function oddName(rng: Rng, w: World, write: boolean): string {
  return rng.weighted<string>([
    [30, () => rng.pick(w.repos)],
    [write ? 0 : 12, w.keep],
    // Fits the 255 bytes of a name, but not, with its tag, into one file name of the fs store.
    [5, () => rng.pick(['a', 'fuzz/', 'ghcr.io/o/']) + 'n'.repeat(rng.int(200, 254 - 10))],
    [4, () => 'l'.repeat(rng.int(256, 420))],
    [3, () => Array.from({ length: rng.int(60, 200) }, () => rng.pick(['a', 'b1', 'c-d'])).join('/')],
    [3, () => `org/${'c'.repeat(rng.int(256, 300))}/app`],
    [6, () => rng.pick(['..', 'a/..', '../a', 'a/../../b', '%2e%2e', 'a/%2e%2e/b', '%2e%2e%2f%2e%2e', 'a%2fb', 'a%2F..%2Fb', '.', 'a/./b',
      '%2e', 'fuzz/app/..', 'fuzz%2fapp', '..%5c..%5cx', 'a\\..\\b'])],
    [4, () => rng.pick(['a%00b', '%00', 'a%0ab', 'a%0d%0ax', 'a%20b', 'a%ff', 'caf%C3%A9', '%E2%80%AEapp', 'ap%F0%9F%90%B3p', 'a%C0%AEb', '%EF%BB%BFapp'])],
    [3, () => rng.pick(['App', 'APP/X', 'Docker.io/app', 'a__b', 'a___b', 'a---b', 'a..b', '_a', 'a_', '-a', 'a.', 'v2', '_catalog'])],
    [3, () => rng.pick(['ghcr.io/org/app', 'localhost:5000/app', '[::1]:5000/app', 'a.b/c', 'host:notaport/x', 'ghcr.io/', 'x.y', 'localhost/x',
      '127.0.0.1:1/a', `${'h'.repeat(250)}.io/a`])],
    [2, () => rng.pick(['a//b', '/a', 'a/', ' a', 'a%20', 'a+b', 'a;b', 'a?b', 'a#b'].map((s) => s.replace(/ /g, '%20').replace(/#/g, '%23')))],
    [1, () => rng.pick(['a%zz', 'a%', '%E0%A4%A', 'caf\xe9'])],
  ]);
}

export function oddDigest(rng: Rng, w: World): string {
  // The 16 MiB blob rarely: asked for as a manifest, today's registry reads all of it into memory.
  const real = () => rng.pick([...w.blobs.filter((b) => b !== w.big), ...w.manifests]).digest;
  return rng.weighted<string>([
    [25, real],
    [0.3, w.big.digest],
    [10, () => `sha256:${rng.hex(64)}`],
    [4, () => real().toUpperCase()],
    [3, () => `sha256:${real().slice(7).toUpperCase()}`],
    [5, () => rng.pick([`sha512:${rng.hex(128)}`, `sha384:${rng.hex(96)}`, `md5:${rng.hex(32)}`, `SHA256:${rng.hex(64)}`,
      `blake3:${rng.hex(64)}`, `sha256+b64u:${rng.string(43)}`, `sha256:${Buffer.from(rng.hex(32)).toString('base64')}`])],
    [5, () => `sha256:${rng.hex(rng.pick([0, 1, 32, 63, 65, 128, 300]))}`],
    [4, () => rng.pick(['sha256:' + 'g'.repeat(64), 'sha256', 'sha256:', ':', `sha256:%00${rng.hex(63)}`, `sha256%3a${rng.hex(64)}`,
      '..', '%2e%2e', `sha256:${rng.hex(64)}%2f..`, 'x'.repeat(300), `sha256:${rng.hex(64)}%00`, `%20sha256:${rng.hex(64)}`])],
  ]);
}

export function oddTag(rng: Rng, w: World): string {
  return rng.weighted<string>([
    [20, () => rng.pick(w.tags)],
    [8, () => rng.pick(['latest', 'v2', 'fuzz', '1.0', 'A_b-c.D', '_x'])],
    [4, () => rng.pick(['t'.repeat(128), 't'.repeat(129), 't'.repeat(300), 'x'.repeat(rng.int(100, 128))])],
    [5, () => rng.pick(['.hidden', '-x', 'a:b', '%2e%2e', '..', 'ta%00g', 'caf%C3%A9', 'a%2fb', 'a b'.replace(' ', '%20'), '%', 'sha256'])],
  ]);
}

export const oddRef = (rng: Rng, w: World) => (rng.chance(0.5) ? oddDigest(rng, w) : oddTag(rng, w));

export function oddQuery(rng: Rng, w: World): string {
  const pairs = rng.weighted<string[]>([
    [10, []],
    [6, () => [rng.pick(['n=1', 'n=0', 'n=-1', 'n=1e3', 'n=abc', 'n=99999999999999999999', 'n=', 'n=1.5', 'n=%00', 'n=0x10', 'n=-0'])]],
    [4, () => [`last=${rng.pick(['', '%00', 'z'.repeat(1000), 'v1', 'fuzz%2fapp', '%ff', rng.pick(w.tags)])}`]],
    [4, () => ['n=1', 'n=2', 'last=a', 'last=b'].filter(() => rng.chance(0.7))],
    [2, () => [rng.pick(['n[]=1', 'n[a]=1', 'n', '&&', '=', 'n=1&=2', '%zz=1'])]],
    [4, () => [`digest=${oddDigest(rng, w)}`, ...(rng.chance(0.3) ? [`digest=${oddDigest(rng, w)}`] : [])]],
    [3, () => [`mount=${oddDigest(rng, w)}`, `from=${rng.pick([w.keep, ...w.repos, 'nope', '..'])}`]],
    [3, () => [`ns=${rng.pick(['docker.io', 'ghcr.io', 'localhost', '..', '%00', 'a'.repeat(300), `${'h'.repeat(240)}.io`, 'Bad_Host', ''])}`]],
    [2, () => [`artifactType=${rng.pick(['application/vnd.fuzz.signature', '', '%00', 'x'.repeat(500)])}`]],
  ]);
  return pairs.length === 0 ? '' : `?${pairs.join('&')}`;
}

export interface OddHeaders {
  headers: Record<string, string | string[]>;
  /** Framing the HTTP layer itself rejects. */
  malformed: boolean;
}

/** 0–3 odd headers; `size` is the size of the blob the request is about, when known. */
export function oddHeaders(rng: Rng, size = 1000): OddHeaders {
  const headers: Record<string, string | string[]> = {};
  let malformed = false;
  const count = rng.weighted<number>([[5, 0], [4, 1], [2, 2], [1, 3]]);
  for (let i = 0; i < count; i++) {
    rng.weighted<void>([
      [5, () => void (headers.range = rng.pick(['bytes=0-0', 'bytes=0-', 'bytes=-1', 'bytes=-0', 'bytes=5-2', 'bytes=0-1,3-4', `bytes=${size}-`,
        `bytes=${size - 1}-${size + 5}`, 'bytes=99999999999999999999-', 'bytes=-99999999999999999999', 'items=0-1', 'bytes=', 'bytes=1e3-2e3',
        'bytes= 0-1', 'bytes=-', '0-1', 'bytes=9007199254740993-']))],
      [4, () => void (headers['content-range'] = rng.pick(['0-0', '0-99', 'bytes 0-9/10', 'bytes */10', '5-2', '0-99999999999999999999', '-1-5',
        'abc', '0-9/*', '9007199254740993-9007199254740999', '1-1', '0-', ' 0-0 ', '0-0/0']))],
      [4, () => void (headers['content-type'] = rng.pick([...MANIFEST_TYPES, 'application/json', 'text/plain', 'application/octet-stream', '',
        'application/vnd.oci.image.index.v1+json; charset=utf-8', 'multipart/form-data; boundary=x', 'a'.repeat(2000), 'application/x-www-form-urlencoded']))],
      [2, () => void (headers.accept = rng.pick([MANIFEST_TYPES.join(', '), '*/*', 'text/html', '']))],
      [2, () => void (headers['x-layermesh-replicate'] = rng.pick(['none', 'all', 'name=*', '%%%', 'label.=x', 'x'.repeat(5000), 'name=[']))],
      [1, () => void (headers.authorization = rng.pick(['Bearer x', 'Basic %%%', 'Basic ' + Buffer.from('u:p').toString('base64'), 'Basic']))],
      [1, () => void (headers['if-none-match'] = rng.pick(['*', '"sha256:x"', 'W/"x"']))],
      [1, () => {
        malformed = true;
        rng.weighted<void>([
          [3, () => void (headers['content-length'] = rng.pick(['abc', '-1', '1.5', '0x10', '1, 2', '99999999999999999999999', ' ']))],
          [1, () => void (headers['transfer-encoding'] = rng.pick(['gzip', 'chunked, identity', 'identity']))],
          [1, () => void (headers['x-fuzz-big'] = 'b'.repeat(rng.int(17_000, 40_000)))],
        ]);
      }],
    ]);
  }
  return { headers, malformed };
}
