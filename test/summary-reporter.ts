// Ends the run with one plain line, `N passed, N failed, N skipped`, that any CI can read; with `, N errors` when
// something failed outside a test (a hook, a file that did not load, an unhandled error): the tests of a file
// whose beforeAll failed count as skipped, not failed.
import type { SerializedError } from 'vitest';
import type { Reporter, TestModule } from 'vitest/node';

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>, unhandledErrors: ReadonlyArray<SerializedError>): void {
    const count = { passed: 0, failed: 0, skipped: 0 };
    let errors = unhandledErrors.length;
    for (const m of modules) {
      errors += m.errors().length;
      for (const s of m.children.allSuites()) errors += s.errors().length;
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === 'passed' || state === 'failed' || state === 'skipped') count[state]++;
      }
    }
    console.log(`\n${count.passed} passed, ${count.failed} failed, ${count.skipped} skipped${errors ? `, ${errors} errors outside tests` : ''}`);
  }
}
