// containerd's event stream, narrowed to this namespace's image and content changes, merged with the
// events this process raises itself (containerd 1.6 emits nothing when content is committed).
import type { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { StoreEvent } from '../store.js';
import type { ContainerdClient } from './client.js';

/** Topic -> the payload message it carries (checked against the Any's type URL) and our event. */
const TOPICS: Record<string, [payload: string, make: (key: string) => StoreEvent]> = {
  '/images/create': ['ImageCreate', (name) => ({ type: 'image-added', name })],
  '/images/update': ['ImageUpdate', (name) => ({ type: 'image-updated', name })],
  '/images/delete': ['ImageDelete', (name) => ({ type: 'image-removed', name })],
  // Explicit content.Delete only: blobs removed by containerd's GC raise no event on 1.6.
  '/content/delete': ['ContentDelete', (digest) => ({ type: 'blob-removed', digest })],
  '/content/create': ['ContentCreate', (digest) => ({ type: 'blob-added', digest })], // 1.7+; never sent by 1.6
};

/** See events.proto: `value.key` is the payload's field 1 (image name or content digest). */
interface Envelope { namespace: string; topic: string; event: { typeUrl: string; value: { key: string } | null } | null }

/** Names used on `local`: events raised by this process, and the store closing (ends every subscription). */
export const LOCAL_EVENT = 'store-event';
export const CLOSE_EVENT = 'store-close';

export function containerdEvents(
  client: ContainerdClient, local: EventEmitter, signal: AbortSignal, logger: Logger,
): AsyncIterable<StoreEvent> {
  // Subscribe now, not on the first next(). containerd confirms nothing: events published before it has
  // registered the subscription are not delivered, so callers reconcile by listing after subscribing.
  const filters = Object.keys(TOPICS).map((t) => `namespace==${JSON.stringify(client.namespace)},topic==${JSON.stringify(t)}`);
  const call = client.serverStream<Envelope>('events', 'Subscribe', { filters });
  const onLocal = (e: StoreEvent) => queue.push(e);
  const onAbort = () => queue.end();
  const queue = new EventQueue<StoreEvent>(() => {
    local.off(LOCAL_EVENT, onLocal);
    local.off(CLOSE_EVENT, onAbort);
    signal.removeEventListener('abort', onAbort);
    call.cancel();
  });
  call.on('data', (env: Envelope) => {
    // Type URLs look like `containerd.services.images.v1.ImageCreate` (1.6: no `types.googleapis.com/` prefix).
    const [payload, make] = TOPICS[env.topic] ?? [];
    const key = env.event?.value?.key;
    if (make && key && env.event?.typeUrl.endsWith(`.${payload}`)) queue.push(make(key));
    else logger.warn({ topic: env.topic, type: env.event?.typeUrl }, 'ignoring containerd event we cannot read');
  });
  call.on('error', (err) => queue.end(signal.aborted || queue.closed ? undefined : client.error('events.Subscribe', err)));
  call.on('end', () => queue.end());
  local.on(LOCAL_EVENT, onLocal);
  local.on(CLOSE_EVENT, onAbort);
  signal.addEventListener('abort', onAbort, { once: true });
  if (signal.aborted) queue.end();
  return queue;
}

/** A push-to-pull buffer: items first, then the end (or the error). */
class EventQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter?: { resolve(r: IteratorResult<T>): void; reject(e: Error): void };
  private failure?: Error;
  closed = false;

  constructor(private readonly cleanup: () => void) {}

  push(item: T): void {
    if (this.closed) return;
    if (this.waiter) this.take().resolve({ value: item, done: false });
    else this.items.push(item);
  }

  end(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    this.cleanup();
    if (this.waiter) this.settle(this.take());
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
        return new Promise((resolve, reject) => {
          this.waiter = { resolve, reject };
          if (this.closed) this.settle(this.take());
        });
      },
      return: () => {
        this.end();
        return Promise.resolve({ value: undefined, done: true });
      },
    };
  }

  private take() {
    const w = this.waiter!;
    this.waiter = undefined;
    return w;
  }

  private settle(w: { resolve(r: IteratorResult<T>): void; reject(e: Error): void }): void {
    const err = this.failure;
    this.failure = undefined; // report the error once
    if (err) w.reject(err);
    else w.resolve({ value: undefined, done: true });
  }
}
