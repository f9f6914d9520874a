// A transfer that stops sending must not hang its reader: the source's chunks, passed on, with
// `onStall` called (it should abort the source) when none comes for `ms`. One timer per transfer
// checks the time of the last chunk: re-arming a timer per chunk cost a tenth of a slow link's CPU,
// where chunks are a few KiB.
export async function* untilStalled<T>(source: AsyncIterable<T>, ms: number, onStall: () => void): AsyncGenerator<T> {
  let last = performance.now();
  let reading = true;
  const check = setInterval(() => {
    if (reading && performance.now() - last >= ms) {
      clearInterval(check);
      onStall();
    }
  }, Math.max(1, ms / 4));
  try {
    for await (const chunk of source) {
      // Only the source's silence counts: time the reader takes (a bandwidth limit's wait) does not.
      reading = false;
      yield chunk;
      reading = true;
      last = performance.now();
    }
  } finally {
    clearInterval(check);
  }
}
