// Everything the benchmark starts registers its undo here; undone in reverse order on exit, error or Ctrl-C.
type Undo = () => Promise<unknown> | unknown;

const undos: { label: string; fn: Undo }[] = [];
let running: Promise<void> | undefined;

/** Registers an undo; the returned function runs it now (once) and unregisters it. */
export function onCleanup(label: string, fn: Undo): () => Promise<void> {
  const entry = { label, fn };
  undos.push(entry);
  let done: Promise<void> | undefined;
  return () =>
    (done ??= (async () => {
      const i = undos.indexOf(entry);
      if (i >= 0) undos.splice(i, 1);
      await fn();
    })());
}

export function cleanupAll(): Promise<void> {
  return (running ??= (async () => {
    while (undos.length) {
      const { label, fn } = undos.pop()!;
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup of ${label} failed: ${(err as Error).message}`);
      }
    }
    running = undefined;
  })());
}

/**
 * On SIGINT/SIGTERM/SIGHUP: undo everything, then exit 130/143/129. An uncaught error (e.g. EPIPE on a
 * closed stdout when piped into `head`) also undoes everything, then exits 1.
 */
export function cleanupOnSignals(): void {
  const crash = (err: unknown) => {
    try {
      console.error(`bench crashed: ${(err as Error)?.stack ?? err}`);
    } catch {
      // stderr may be gone as well
    }
    void cleanupAll().finally(() => process.exit(1));
  };
  process.once('uncaughtException', crash);
  process.once('unhandledRejection', crash);
  // Without a listener, a write to a closed pipe throws from inside the stream.
  process.stdout.on('error', () => {});
  const codes: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  for (const [signal, code] of Object.entries(codes)) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping what the benchmark started…`);
      void cleanupAll().finally(() => process.exit(code));
    });
  }
}

/** Runs a benchmark's main, undoes everything it set up whatever happens, and exits with its code. */
export async function runBench(main: () => Promise<number>): Promise<never> {
  let code = 1;
  try {
    code = await main();
  } catch (err) {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
  } finally {
    await cleanupAll();
  }
  process.exit(code);
}
