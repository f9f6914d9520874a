// meshctl's view of a daemon: its admin API over HTTP.
export class AdminClient {
  readonly #base: URL;
  readonly #token?: string;

  /**
   * `node`: the daemon's URL; a password in it (`http://layermesh:TOKEN@web1:5000`, as the registry's Basic
   * challenge takes the token) is the token. `token`: the node's registry token, needed when it is asked from
   * another host. Neither is ever printed.
   */
  constructor(node: string, token?: string) {
    const base = URL.canParse(node) ? new URL(node) : undefined;
    if (!base || (base.protocol !== 'http:' && base.protocol !== 'https:')) throw new Error('--node expects http(s)://HOST:PORT, e.g. http://127.0.0.1:5000');
    this.#token = token ?? (base.password ? decoded(base.password) : undefined);
    base.username = base.password = '';
    this.#base = base;
  }

  get<T>(path: string, query: Record<string, string> = {}): Promise<T> {
    return this.request<T>('GET', path, query);
  }

  /** A call that changes the node (POST, PUT, DELETE): the daemon lets only privileged users or the token make it. */
  async request<T>(method: string, path: string, query: Record<string, string> = {}): Promise<T> {
    const url = new URL(path, this.#base);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    let res: Response;
    try {
      res = await fetch(url, { method, ...(this.#token && { headers: { authorization: `Bearer ${this.#token}` } }) });
    } catch (err) {
      throw new Error(`no meshd answers at ${this.#base.origin} (${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}); is it running? (--node URL)`);
    }
    if (!res.ok) {
      const body = (await res.json().catch(() => undefined)) as { errors?: { message: string }[] } | undefined;
      throw new Error(`${url.pathname}: ${res.status} ${body?.errors?.[0]?.message ?? res.statusText}`);
    }
    return (await res.json()) as T;
  }
}

/** A URL's percent-encoded part as it was meant; as given when it is not valid percent-encoding (a bare `%`). */
function decoded(part: string): string {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}
