// Peer data plane cases: odd blob digests, image names and sequence bodies, signed with a valid membership
// proof so that they reach the handlers; and some with invalid proofs, which must be answered 401.
import { isDigest } from '../../src/oci/digest.js';
import { SEQUENCE_PATH } from '../../src/mirror/peer-protocol.js';
import { AUTH_HEADER, proof } from '../../src/mirror/peer-auth.js';
import { PATIENT_HEADER } from '../../src/mirror/peer-protocol.js';
import type { FuzzRequest } from './http.js';
import { malformedUri, oddDigest, oddHeaders } from './inputs.js';
import type { Rng } from './prng.js';
import type { Send } from './registry-cases.js';
import { descriptor, type World } from './world.js';

export interface PeerCtx {
  rng: Rng;
  w: World;
  send: Send;
  key: Buffer;
  /** The peer id of the node under test: proofs are made for it. */
  target: string;
}

/** Signed for `signAs` (default the method itself: a HEAD may be signed as its GET). */
function signed({ key, target }: Pick<PeerCtx, 'key' | 'target'>, method: string, path: string, extra: Partial<FuzzRequest> = {}, signAs = method): FuzzRequest {
  const body = extra.body && Buffer.concat(extra.body);
  const headers = { ...extra.headers, [AUTH_HEADER]: proof(key, { method: signAs, path, target, body }) };
  return { method, path, ...extra, headers, malformed: extra.malformed || malformedUri(path) };
}

function oddImageName(rng: Rng, w: World): string {
  const enc = encodeURIComponent;
  return rng.weighted<string>([
    [6, () => `name=${enc(rng.pick(w.images))}`],
    [5, () => `name=${enc(`docker.io/library/${'a'.repeat(rng.int(300, 600))}:latest`)}`],
    [3, () => `name=${enc(`docker.io/${'b'.repeat(rng.int(200, 250))}:v1`)}`],
    [2, () => `name=${'c'.repeat(rng.int(300, 5000))}`],
    [3, () => `name=${rng.pick(['..%2F..%2Fetc%2Fpasswd', '../../x', '%00', 'a%00b', '', '%E2%80%AE', 'caf%C3%A9', '%ff', '.', 'images', '%2e%2e',
      'docker.io%2Ffuzz%2Fkeep%3Av1%00', 'docker.io/fuzz/keep:v1/../../x', 'docker.io%2Ffuzz%2Fkeep%40sha256%3A' + rng.hex(64)])}`],
    [2, () => rng.pick(['', 'name', 'name=a&name=b', `name[]=${enc(w.images[0])}`, 'name[a]=1', 'x=1', `name=${enc(w.images[0])}&name=${'d'.repeat(400)}`])],
  ]);
}

/**
 * A sequence body. Valid sequences name only blobs held here: for a blob this node lacks, the data plane waits
 * AWAIT_COPY_MS (10 s) by design, for a copy that may be about to arrive (the next node of a pipeline).
 */
function sequenceBody(rng: Rng, w: World): { body: string } {
  const held = () => descriptor(rng.pick(w.blobs.slice(0, -1)));
  // Digest and size only: 10,001 of them still fit the data plane's 1 MiB body limit.
  const bare = () => (({ digest, size }) => ({ digest, size }))(held());
  const s = (d: unknown) => JSON.stringify(d);
  // A well-formed digest of no blob here is waited for: it is made uppercase, which is not a digest.
  const notUnknown = (d: string) => (isDigest(d) && !w.blobs.some((b) => b.digest === d) ? d.toUpperCase() : d);
  return rng.weighted<{ body: string }>([
    [6, () => ({ body: rng.pick(['{"blobs":[null]}', '{"blobs":[{},null]}', '{"blobs":[1,null]}', s({ blobs: [held(), null] })]) })],
    [6, () => ({ body: rng.pick(['{"blobs":null}', '{"blobs":{}}', '{"blobs":"x"}', '{"blobs":[]}', '{"blobs":[1,2]}', '{"blobs":[[]]}', '[]', 'null',
      '"str"', '7', '{}', '{"blobs":[{"digest":7,"size":1}]}', '{"blobs":[{"digest":"sha256:x","size":1}]}', '{"__proto__":{"blobs":[1]}}']) })],
    [4, () => ({ body: s({ blobs: [{ ...held(), size: rng.pick<unknown>([-1, 1e20, 1.5, '10', null, 2 ** 53]) }] }) })],
    [3, () => ({ body: s({ blobs: [{ ...held(), digest: rng.pick([held().digest.toUpperCase(), notUnknown(oddDigest(rng, w))]) }] }) })],
    [2, () => ({ body: s({ blobs: Array.from({ length: rng.pick([10_001, 50_000]) }, bare) }) })],
    // Each blob of a sequence costs about 1 ms even when tiny: a few hundred, not thousands (that takes seconds).
    [2, () => ({ body: s({ blobs: Array.from({ length: rng.pick([20, 100]) }, () => descriptor(w.blobs[0])) }) })],
    [6, () => ({ body: s({ blobs: Array.from({ length: rng.int(1, 4) }, held) }) })],
    [3, () => ({ body: s({ blobs: [{ ...held(), size: held().size + 1 }, held()] }) })],
    [2, () => ({ body: s({ blobs: [held(), { ...held(), size: 3 }] }) })],
    [3, () => ({ body: rng.pick(['{', '{"blobs":[', 'x'.repeat(100), '\uFEFF{"blobs":[]}', `{"blobs":[${'['.repeat(5000)}`]) })],
  ]);
}

async function blobs({ rng, w, send, key, target }: PeerCtx): Promise<void> {
  const method = rng.pick(['GET', 'HEAD']);
  const isHeld = rng.chance(0.5);
  const blob = rng.pick(w.blobs);
  const digest = isHeld ? blob.digest : oddDigest(rng, w);
  const path = rng.weighted<string>([
    [10, `/peer/v1/blobs/${digest}`],
    [1, () => rng.pick(['/peer/v1/blobs/', '/peer/v1/blobs/a/b', '/peer/v1/blobs/..%2f..%2fetc%2fpasswd', `/peer/v1/blobs/${digest}?x=1&x=2`,
      `/peer/v1/blobs/${digest}/`, '/peer/v1/blobs/%2e%2e', `/peer/v1/blobs/${'z'.repeat(400)}`])],
  ]);
  const headers: Record<string, string> = rng.chance(0.4) ? { range: String(oddHeaders(rng, blob.size).headers.range ?? 'bytes=0-9') } : {};
  // Patient only for blobs held here: for others, the wait of a pipeline's next node is by design.
  if (isHeld && rng.chance(0.4)) headers[PATIENT_HEADER] = `12D3KooFuzz${rng.hex(8)}`;
  // GETs of the 16 MiB blob are few: each one sends it whole.
  if (method === 'GET' && digest === w.big.digest && rng.chance(0.8)) headers.range = 'bytes=0-1023';
  await send(signed({ key, target }, method, path, { headers }, method === 'HEAD' && rng.chance(0.5) ? 'GET' : method));
}

async function images({ rng, w, send, key, target }: PeerCtx): Promise<void> {
  const path = `/peer/v1/images?${oddImageName(rng, w)}`;
  await send(signed({ key, target }, rng.chance(0.9) ? 'GET' : 'HEAD', path));
}

async function sequence({ rng, w, send, key, target }: PeerCtx): Promise<void> {
  const { body } = sequenceBody(rng, w);
  const type = rng.weighted<string | undefined>([[12, 'application/json'], [1, undefined], [1, () => rng.pick(['text/plain', 'application/octet-stream',
    'application/json; charset=utf-16', 'application/x-www-form-urlencoded', 'Application/JSON', 'application/vnd.oci.image.index.v1+json'])]]);
  const headers: Record<string, string> = type === undefined ? {} : { 'content-type': type };
  if (rng.chance(0.2)) headers[PATIENT_HEADER] = `12D3KooFuzz${rng.hex(8)}`;
  await send(signed({ key, target }, 'POST', SEQUENCE_PATH, { body: [Buffer.from(body)], headers }));
}

/** A request to any path of the data plane without a valid proof: 401, whatever it asks. */
async function unproven({ rng, w, send, key, target }: PeerCtx): Promise<void> {
  const method = rng.pick(['GET', 'HEAD', 'POST']);
  const path = rng.pick([`/peer/v1/blobs/${rng.pick(w.blobs).digest}`, `/peer/v1/images?name=${encodeURIComponent(w.images[0])}`, SEQUENCE_PATH, '/peer/v1/nope']);
  const now = Date.now();
  const other = method === 'POST' ? 'GET' : 'POST';
  const auth = rng.weighted<string | undefined>([
    [2, undefined],
    [1, () => rng.pick(['', 'garbage', `${now}.`, `.${'a'.repeat(64)}`, `${now}.${'g'.repeat(64)}`, `12345678901234567.${'a'.repeat(64)}`])],
    [2, () => proof(rng.bytes(32), { method, path, target })],
    [2, () => proof(key, { method, path, target }, now - rng.int(61_000, 10 ** 9))],
    [1, () => proof(key, { method, path, target }, now + rng.int(61_000, 10 ** 9))],
    [2, () => proof(key, { method, path: rng.pick(['/peer/v1/images', `${path}x`, `${path}?x=1`, path.toUpperCase()]), target })],
    [2, () => proof(key, { method, path, target: `${target}x` })],
    [1, () => proof(key, { method: other, path, target })],
    [1, () => proof(key, { method, path, target }).toUpperCase()],
    [1, () => `${proof(key, { method, path, target })}, ${proof(key, { method, path, target })}`],
  ]);
  const headers: Record<string, string> = auth === undefined ? {} : { [AUTH_HEADER]: auth };
  await send({ method, path, headers, expect: 401, body: method === 'POST' ? [Buffer.from(JSON.stringify({ blobs: [descriptor(w.blobs[0])] }))] : undefined });
}

/** Other routes and methods, with a valid proof. */
async function elsewhere({ rng, send, key, target }: PeerCtx): Promise<void> {
  const method = rng.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'POST']);
  const path = rng.pick(['/peer/v1/nope', '/peer/v1/', '/', '/v2/', `${SEQUENCE_PATH}/x`, '/peer/v1/images/x', '/peer/v2/blobs/x', '/peer/v1/blobs']);
  await send(signed({ key, target }, method, path, method === 'GET' ? {} : { body: [Buffer.from('{}')], headers: { 'content-type': 'application/json' } }));
}

export async function peerCase(ctx: PeerCtx): Promise<void> {
  const family = ctx.rng.weighted<(c: PeerCtx) => Promise<void>>([[30, () => blobs], [22, () => images], [30, () => sequence], [12, () => unproven], [4, () => elsewhere]]);
  await family(ctx);
}
