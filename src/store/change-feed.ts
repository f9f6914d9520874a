// In-process store events, for the stores that only this process writes.
import { EventEmitter, on } from 'node:events';
import type { StoreEvent } from './store.js';

export class ChangeFeed {
  readonly #emitter = new EventEmitter();

  emit(event: StoreEvent): void {
    this.#emitter.emit('change', event);
  }

  async *events(signal: AbortSignal): AsyncIterable<StoreEvent> {
    try {
      for await (const [event] of on(this.#emitter, 'change', { signal })) yield event as StoreEvent;
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }
}
