// A transfer that stops sending must not hang its reader: the source's chunks, passed on, with
// `onStall` called (it should abort the source) when none comes for `ms`.
export async function* untilStalled<T>(source: AsyncIterable<T>, ms: number, onStall: () => void): AsyncGenerator<T> {
  let timer = setTimeout(onStall, ms);
  try {
    for await (const chunk of source) {
      clearTimeout(timer);
      timer = setTimeout(onStall, ms);
      yield chunk;
    }
  } finally {
    clearTimeout(timer);
  }
}
