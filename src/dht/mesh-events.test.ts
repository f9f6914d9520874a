import { describe, expect, test } from 'vitest';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { TopicValidatorResult, type Message } from '@libp2p/gossipsub';
import { checkEventMessage, decodeEvent, encodeEvent, EVENTS_TOPIC } from './mesh-events.js';
import type { MeshEvent } from './router.js';

const key = await generateKeyPair('Ed25519');
const from = peerIdFromPrivateKey(key);
const event: MeshEvent = { type: 'image-pushed', image: 'docker.io/library/app:1', digest: `sha256:${'ef'.repeat(32)}`, node: from.toString(), clock: 1 };
const signed = (data: Uint8Array): Message => ({ type: 'signed', from, topic: EVENTS_TOPIC, data, sequenceNumber: 1n, signature: new Uint8Array(64), key: key.publicKey });
const json = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

describe('mesh events', () => {
  test('round trip, extra fields dropped', () => {
    expect(decodeEvent(encodeEvent(event))).toEqual({ event });
    expect(decodeEvent(json({ ...event, extra: 1 }))).toEqual({ event });
  });

  test('an event from a node older than push clocks counts as the oldest push of its name', () => {
    expect(decodeEvent(json({ ...event, clock: undefined }))).toEqual({ event: { ...event, clock: 0 } });
  });

  test('small blobs inlined in an event survive the round trip', () => {
    const inlined = { ...event, replicate: 'name=web*', inline: { [event.digest]: Buffer.from('{"schemaVersion":2}').toString('base64') }, takers: ['AbCd-_12', 'zzzzzzzz'] };
    expect(decodeEvent(encodeEvent(inlined))).toEqual({ event: inlined });
  });

  test('a removal (rm --mesh) names only the image and the node asking; one claiming another node is rejected', () => {
    const removal = { type: 'image-removed' as const, image: 'docker.io/library/app:1', node: from.toString() };
    expect(decodeEvent(json({ ...removal, digest: 'ignored' }))).toEqual({ event: removal });
    expect(decodeEvent(json({ ...removal, image: '' }))).toEqual({ error: 'bad image' });
    expect(decodeEvent(json({ ...removal, image: 'x\x1b[2J' }))).toEqual({ error: 'bad image' });
    expect(decodeEvent(json({ ...removal, image: `docker.io/library/app@sha256:${'ab'.repeat(32)}` })).event).toBeDefined();
    expect(checkEventMessage(signed(encodeEvent(removal)))).toEqual({ result: TopicValidatorResult.Accept, event: removal });
    expect(checkEventMessage(signed(encodeEvent({ ...removal, node: 'someone-else' }))).result).toBe(TopicValidatorResult.Reject);
  });

  test('a well-formed event signed by the node it names is accepted', () => {
    expect(checkEventMessage(signed(encodeEvent(event)))).toEqual({ result: TopicValidatorResult.Accept, event });
  });

  test.each([
    ['not JSON', new TextEncoder().encode('{'), /not UTF-8 JSON/],
    ['not UTF-8', new Uint8Array([0xff, 0xfe]), /not UTF-8 JSON/],
    ['an array', json([event]), /not a JSON object/],
    ['without type', json({ ...event, type: undefined }), /no type/],
    ['with a bad digest', json({ ...event, digest: 'sha256:' }), /bad digest/],
    ['without image', json({ ...event, image: '' }), /bad image/],
    ['naming an image with terminal escapes', json({ ...event, image: 'docker.io/library/app:1\x1b]52;c;eA==\x07' }), /bad image/],
    ['naming a repository without tag or digest', json({ ...event, image: 'docker.io/library/app' }), /bad image/],
    ['naming an image in no registry form', json({ ...event, image: 'App:1' }), /bad image/],
    ['too large', json({ ...event, inline: { [event.digest]: 'A'.repeat(70_000) } }), /exceeds/],
    ['with inline bytes that are not base64', json({ ...event, inline: { [event.digest]: 'not base64!' } }), /bad inline/],
    ['with inline bytes under a bad digest', json({ ...event, inline: { 'sha256:': 'AAAA' } }), /bad inline/],
    ['with a negative clock', json({ ...event, clock: -1 }), /bad clock/],
    ['with takers that are not tags', json({ ...event, takers: ['a-peer-id-in-full'] }), /bad takers/],
    ['with takers that are not a list', json({ ...event, takers: 'AbCd-_12' }), /bad takers/],
    ['with a fractional clock', json({ ...event, clock: 1.5 }), /bad clock/],
    ['naming another node', json({ ...event, node: 'someone-else' }), /names node someone-else but was signed by/],
  ])('an event %s is rejected', (_, data, reason) => {
    const verdict = checkEventMessage(signed(data));
    expect(verdict.result).toBe(TopicValidatorResult.Reject);
    expect(verdict.reason).toMatch(reason);
  });

  test('unsigned messages are rejected; unknown types are ignored (newer members may send them)', () => {
    expect(checkEventMessage({ type: 'unsigned', topic: EVENTS_TOPIC, data: encodeEvent(event) }).result).toBe(TopicValidatorResult.Reject);
    expect(checkEventMessage(signed(json({ type: 'node-draining', node: from.toString() }))).result).toBe(TopicValidatorResult.Ignore);
  });
});
