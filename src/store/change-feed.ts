// In-process store events, for the stores that only this process writes.
import { EventEmitter, on } from 'node:events';
import type { StoreEvent } from './store.js';

export class ChangeFeed {
  readonly #emitter = new EventEmitter();
  readonly #closed = new AbortController();

  emit(event: StoreEvent): void {
    this.#emitter.emit('change', event);
  }

  /** Ends every subscription: the store is closing, nothing more will come. */
  close(): void {
    this.#closed.abort();
  }

  async *events(signal: AbortSignal): AsyncIterable<StoreEvent> {
    const until = AbortSignal.any([signal, this.#closed.signal]);
    try {
      for await (const [event] of on(this.#emitter, 'change', { signal: until })) yield event as StoreEvent;
    } catch (err) {
      if (!until.aborted) throw err;
    }
  }
}
