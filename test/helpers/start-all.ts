// Starting several daemons for a test file at once: when one fails, the hook must not return before the others
// have started too, or afterAll finds them not yet assigned and leaves them running.

/** Waits for every start (each assigning what it started as it resolves), then throws the first failure. */
export async function startAll(starts: Promise<unknown>[]): Promise<void> {
  const outcomes = await Promise.allSettled(starts);
  const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
  if (failed) throw failed.reason;
}
