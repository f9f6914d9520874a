// A transfer that stops sending must not hang its reader: the source's chunks, passed on, with
// `onStall` called (it should abort the source) when none comes for `ms`. One timer per transfer
// checks the time of the last chunk: re-arming a timer per chunk cost a tenth of a slow link's CPU,
// where chunks are a few KiB.
export async function* untilStalled<T>(source: AsyncIterable<T>, ms: number, onStall: () => void): AsyncGenerator<T> {
  let last = performance.now();
  const check = setInterval(() => {
    if (performance.now() - last >= ms) {
      clearInterval(check);
      onStall();
    }
  }, Math.max(1, ms / 4));
  try {
    for await (const chunk of source) {
      last = performance.now();
      yield chunk;
    }
  } finally {
    clearInterval(check);
  }
}
