// Work on one key done one piece after the other, in the order it was asked; other keys do not wait.
export class KeyedQueue {
  /** Per key, the end of the work queued for it. */
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(work);
    const done = run.then(() => undefined, () => undefined);
    this.#tails.set(key, done);
    void done.then(() => this.#tails.get(key) === done && this.#tails.delete(key));
    return run;
  }
}
