// meshctl's view of a daemon: its admin API over HTTP.
export class AdminClient {
  /** `token`: the node's registry token, needed when it is asked from another host. */
  constructor(private readonly base: string, private readonly token?: string) {}

  async get<T>(path: string, query: Record<string, string> = {}): Promise<T> {
    const url = new URL(path, this.base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    let res: Response;
    try {
      res = await fetch(url, this.token ? { headers: { authorization: `Bearer ${this.token}` } } : {});
    } catch (err) {
      throw new Error(`no meshd answers at ${this.base} (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}); is it running? (--node URL)`);
    }
    if (!res.ok) {
      const body = (await res.json().catch(() => undefined)) as { errors?: { message: string }[] } | undefined;
      throw new Error(`${url.pathname}: ${res.status} ${body?.errors?.[0]?.message ?? res.statusText}`);
    }
    return (await res.json()) as T;
  }
}
