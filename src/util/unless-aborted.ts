// A wait cut short once whoever waits no longer needs its result: the promise goes on, and how it ends is then ignored.
/** `promise`'s value, or undefined as soon as `signal` aborts. */
export function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const aborted = () => resolve(undefined);
    if (signal.aborted) aborted();
    else signal.addEventListener('abort', aborted, { once: true });
    void promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', aborted));
  });
}
