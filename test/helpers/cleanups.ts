// Undoing what a test set up: every step runs, last set up first, even when one fails (a step that threw used to
// skip the rest, leaving their daemons and directories behind); the failures are thrown together at the end.

/** Runs and empties `steps`, newest first; throws an AggregateError of those that failed. */
export async function cleanUp(steps: (() => Promise<unknown>)[]): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps.splice(0).reverse()) {
    try {
      await step();
    } catch (err) {
      failures.push(err);
    }
  }
  if (failures.length) throw new AggregateError(failures, `${failures.length} cleanup step(s) failed`);
}
