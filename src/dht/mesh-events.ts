// Mesh events on gossipsub: one topic, JSON bodies, validated before anyone sees or forwards them.
import { TopicValidatorResult, type Message, type TopicValidatorFn } from '@libp2p/gossipsub';
import { createTopicScoreParams } from '@libp2p/gossipsub/score';
import type { Logger } from 'pino';
import type { GossipEvent, MeshEvent } from './router.js';
import { isImageName } from '../oci/names.js';

export const EVENTS_TOPIC = 'layermesh/events/1';

/** Room for an event with its inlined small blobs (see MeshEvent.inline). */
export const MAX_EVENT_BYTES = 64 << 10;
/** Longest image name or replication policy an event carries. */
const MAX_EVENT_STRING = 1024;
/** OCI digest grammar: algorithm ":" encoded. */
const DIGEST = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const TAKER_TAG = /^[A-Za-z0-9_-]{8}$/;

/**
 * gossipsub's score counters decay once per this interval. Its default, every second, woke an idle node once a
 * second for nothing to decay; the factors below are per interval, chosen to fade counters as fast per second
 * as gossipsub's defaults do.
 */
const SCORE_DECAY_INTERVAL_MS = 5_000;
const perInterval = (perSecond: number): number => perSecond ** (SCORE_DECAY_INTERVAL_MS / 1000);

/**
 * Scores for the mesh's quiet topics (events, members). gossipsub's topic defaults expect a busy topic (peers that deliver fewer than
 * 20 messages per 10 s get penalised), which a topic carrying a few pushes per hour would never be; only
 * invalid messages count here, so a peer that keeps sending them is eventually cut off.
 */
export const quietTopicScoreParams = createTopicScoreParams({
  topicWeight: 1,
  timeInMeshWeight: 0,
  firstMessageDeliveriesWeight: 0,
  meshMessageDeliveriesWeight: 0,
  meshFailurePenaltyWeight: 0,
  invalidMessageDeliveriesWeight: -10,
  invalidMessageDeliveriesDecay: perInterval(0.5),
});

/** Peer scores: behaviour penalties (gossipsub's protocol violations) fade at its default rate, 0.2 a second. */
export const peerScoreDecay = { decayInterval: SCORE_DECAY_INTERVAL_MS, behaviourPenaltyDecay: perInterval(0.2) };

export function encodeEvent(event: GossipEvent): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(event));
}

/** The event in `data`, or why it is not one. Unknown `type`s are `undefined`: newer members may send them. */
export function decodeEvent(data: Uint8Array): { event?: GossipEvent; error?: string } {
  if (data.byteLength > MAX_EVENT_BYTES) return { error: `event of ${data.byteLength} bytes exceeds ${MAX_EVENT_BYTES}` };
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(data));
  } catch {
    return { error: 'event is not UTF-8 JSON' };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { error: 'event is not a JSON object' };
  const v = value as Record<string, unknown>;
  if (typeof v.type !== 'string') return { error: 'event has no type' };
  if (v.type !== 'image-pushed' && v.type !== 'image-removed') return {};
  // Names end up in stores, logs and operators' terminals: only what a push through a registry could name.
  if (typeof v.image !== 'string' || v.image.length > MAX_EVENT_STRING || !isImageName(v.image)) return { error: 'bad image' };
  if (v.type === 'image-removed') {
    if (typeof v.node !== 'string' || v.node === '') return { error: 'bad node' };
    return { event: { type: v.type, image: v.image, node: v.node } };
  }
  if (typeof v.digest !== 'string' || !DIGEST.test(v.digest)) return { error: 'bad digest' };
  if (typeof v.node !== 'string' || v.node === '') return { error: 'bad node' };
  // Nodes from before push clocks send none: their pushes count as the oldest of their name (a rolling upgrade must not
  // have them rejected, and so scored down, by the upgraded nodes).
  if (v.clock !== undefined && (!Number.isSafeInteger(v.clock) || (v.clock as number) < 0)) return { error: 'bad clock' };
  if (v.replicate !== undefined && (typeof v.replicate !== 'string' || v.replicate.length > MAX_EVENT_STRING)) return { error: 'bad replicate' };
  if (v.inline !== undefined && !isInline(v.inline)) return { error: 'bad inline blobs' };
  if (v.takers !== undefined && !(Array.isArray(v.takers) && v.takers.every((t) => typeof t === 'string' && TAKER_TAG.test(t)))) return { error: 'bad takers' };
  const event: MeshEvent = { type: v.type, image: v.image, digest: v.digest, node: v.node, clock: (v.clock as number | undefined) ?? 0 };
  if (v.replicate !== undefined) event.replicate = v.replicate;
  if (v.inline !== undefined) event.inline = v.inline;
  if (v.takers !== undefined) event.takers = v.takers as string[];
  return { event };
}

function isInline(value: unknown): value is Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  return Object.entries(value).every(([digest, bytes]) => DIGEST.test(digest) && typeof bytes === 'string' && BASE64.test(bytes));
}

/**
 * Accepts well-formed events signed by the node they name; rejects (which also lowers the sender's score)
 * malformed ones, unsigned ones and those claiming to come from another node; ignores unknown types.
 */
export function eventValidator(log: Logger): TopicValidatorFn {
  return (propagationSource, msg: Message) => {
    const verdict = checkEventMessage(msg);
    if (verdict.result === TopicValidatorResult.Reject) {
      log.warn({ from: propagationSource.toString(), reason: verdict.reason }, 'rejected mesh event');
    }
    return verdict.result;
  };
}

export function checkEventMessage(msg: Message): { result: TopicValidatorResult; reason?: string; event?: GossipEvent } {
  if (msg.type !== 'signed') return { result: TopicValidatorResult.Reject, reason: 'unsigned message' };
  const { event, error } = decodeEvent(msg.data);
  if (error !== undefined) return { result: TopicValidatorResult.Reject, reason: error };
  if (event === undefined) return { result: TopicValidatorResult.Ignore, reason: 'unknown event type' };
  const signer = msg.from.toString();
  if (event.node !== signer) {
    return { result: TopicValidatorResult.Reject, reason: `event names node ${event.node} but was signed by ${signer}` };
  }
  return { result: TopicValidatorResult.Accept, event };
}
