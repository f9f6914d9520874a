// One raw HTTP exchange with a deadline. Paths go out exactly as written (no URL normalisation), a body
// may go in parts with another request between them, and may be shorter than its Content-Length.
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';

export interface FuzzRequest {
  method: string;
  path: string;
  headers?: Record<string, string | string[]>;
  /** Sent in order; `between` runs after the first part (a racing request). */
  body?: Buffer[];
  between?: () => Promise<unknown>;
  /** Content-Length declares more than is sent: the server may rightly wait for the rest until we hang up. */
  short?: boolean;
  /** Not valid HTTP or not a valid URI: the HTTP layer may answer, so no registry error format is expected. */
  malformed?: boolean;
  /** The status that must come back (401 for a bad membership proof). */
  expect?: number;
}

export interface Outcome {
  /** Undefined when no answer came. */
  status?: number;
  headers: IncomingHttpHeaders;
  /** The first KEEP bytes of the body. */
  body: Buffer;
  bytes: number;
  ms: number;
  /**
   * timeout: no complete answer in time; cut: the answer's body ended early; no answer: the connection closed
   * first. Not failures: waited (no answer to a short body), hung up (closed while our body was still going).
   */
  error?: 'timeout' | 'no answer' | 'cut' | 'waited' | 'hung up' | 'unsendable';
  detail?: string;
}

const KEEP = 64 << 10;
/** How long a request with a short body waits for an early answer before it hangs up. */
const SHORT_GRACE_MS = 400;

const agents = { keptAlive: new Agent({ keepAlive: true, maxSockets: 64 }), oneShot: new Agent({ keepAlive: false }) };
/** The peer data plane speaks TLS; who answers is not what the fuzzer checks. */
const tlsAgents = {
  keptAlive: new HttpsAgent({ keepAlive: true, maxSockets: 64, rejectUnauthorized: false }),
  oneShot: new HttpsAgent({ keepAlive: false, rejectUnauthorized: false }),
};

export function send(base: string, req: FuzzRequest, timeoutMs: number): Promise<Outcome> {
  return sendOnce(base, req, timeoutMs).then((o) =>
    // A kept-alive socket the server closed just as it was reused: not the server's answer, try once more.
    o.error === 'no answer' && o.detail === 'reused' && !req.between ? sendOnce(base, req, timeoutMs) : o);
}

function sendOnce(base: string, req: FuzzRequest, timeoutMs: number): Promise<Outcome> {
  const url = new URL(base);
  const started = performance.now();
  return new Promise((resolve) => {
    let done = false;
    let answered = false;
    let written = false;
    let timer: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    const finish = (o: Partial<Outcome>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      clearTimeout(grace);
      resolve({ headers: {}, body: Buffer.alloc(0), bytes: 0, ms: performance.now() - started, ...o });
    };
    const parts = req.body ?? [];
    const headers = { ...req.headers };
    if (parts.length > 0 && !Object.keys(headers).some((h) => /^(content-length|transfer-encoding)$/i.test(h))) {
      headers['content-length'] = String(parts.reduce((s, p) => s + p.length, 0));
    }
    let r: ReturnType<typeof request>;
    try {
      const unfinished = req.short || parts.length > 1 || req.between !== undefined;
      // For requests whose body may stay unfinished: their connection must not carry another request.
      const pick = (a: typeof agents | typeof tlsAgents) => (unfinished ? a.oneShot : a.keptAlive);
      const options = { host: url.hostname, port: url.port, method: req.method, path: req.path, headers };
      r = url.protocol === 'https:' ? httpsRequest({ ...options, agent: pick(tlsAgents) }) : request({ ...options, agent: pick(agents) });
    } catch (err) {
      return finish({ error: 'unsendable', detail: (err as Error).message });
    }
    timer = setTimeout(() => {
      r.destroy();
      finish({ error: 'timeout' });
    }, timeoutMs);
    grace = setTimeout(() => {
      if (!req.short || answered) return;
      r.destroy();
      finish({ error: 'waited' });
    }, SHORT_GRACE_MS);
    r.on('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      let kept = 0;
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        bytes += c.length;
        if (kept < KEEP) (chunks.push(c), (kept += c.length));
      });
      const got = () => ({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).subarray(0, KEEP), bytes });
      res.on('end', () => finish(got()));
      res.on('aborted', () => finish({ ...got(), error: 'cut' }));
      res.on('error', (err) => finish({ ...got(), error: 'cut', detail: err.message }));
    });
    r.on('error', (err: NodeJS.ErrnoException) => {
      if (answered) return;
      if (!written && (err.code === 'EPIPE' || err.code === 'ECONNRESET')) return finish({ error: 'hung up', detail: err.code });
      finish({ error: 'no answer', detail: r.reusedSocket && err.code === 'ECONNRESET' ? 'reused' : err.code ?? err.message });
    });
    void (async () => {
      try {
        if (parts.length === 0 && req.between) await req.between();
        for (const [i, part] of parts.entries()) {
          if (done || answered) break;
          if (!r.write(part)) await new Promise((resolve) => (r.once('drain', resolve), r.once('close', resolve)));
          if (i === 0 && req.between) await req.between();
        }
        r.end(() => (written = true));
      } catch {
        // The socket went away while writing: the outcome is whatever the response handlers saw.
      }
    })();
  });
}
