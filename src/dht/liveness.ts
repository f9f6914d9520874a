// Notices a peer that went away (host off the network, meshd paused or killed without a FIN) and drops its
// connection, so that the mesh forgets it. It replaces libp2p's connection monitor, which pings each
// connection from both ends every 10 s over a new stream (yamux open, multistream-select, ping protocol,
// close): ~3 ms of CPU per ping on both ends, the bulk of what an idle node spent. Here a ping is one yamux
// Ping frame and its answer, on the connection's muxer: no stream, no negotiation. The peer's yamux answers
// it from its event loop, so a paused process is noticed too (which TCP keep-alive would not).
//
// Pings were still most of what an idle node spent, so a connection is pinged only once it has been quiet:
// anything heard from the peer (a ping, an answer, any message) proves it alive. Dialing ends check at
// multiples of the interval on the wall clock, listening ends half an interval later, so on an idle
// connection whichever end pinged first goes on pinging and the other, having just heard it, does not. A
// peer gone is dropped within 1.75 intervals + the timeout of its last word (1.5 on an idle connection, whose
// last word came at the other end's check). Every node checks at the same moments, so the pings a node
// answers arrive while it is awake for its own.
import type { Connection } from '@libp2p/interface';
import type { Logger } from 'pino';

export interface LivenessOptions {
  /** A connection quiet for about this long is pinged (at most once per interval from each end). */
  intervalMs: number;
  /** A ping unanswered for this long drops the connection. */
  timeoutMs: number;
}

/** The part of libp2p liveness uses. */
export interface Connections {
  getConnections(): Connection[];
}

/** yamux's muxer, as libp2p's Connection holds it (not part of the Connection interface). */
interface PingingMuxer {
  ping(options: { signal: AbortSignal }): Promise<number>;
  /** The decrypted connection under the muxer: a 'message' event for whatever the peer sends. */
  maConn?: EventTarget;
}

function muxerOf(conn: Connection): PingingMuxer | undefined {
  const muxer = (conn as { muxer?: Partial<PingingMuxer> }).muxer;
  return typeof muxer?.ping === 'function' ? (muxer as PingingMuxer) : undefined;
}

/**
 * Heard from within this share of the interval: no ping needed. Up to a quarter interval of clock skew between two
 * nodes, one end of an idle connection stays silent; past it both ping, as they did before.
 */
const QUIET_SHARE = 0.75;

export class Liveness {
  private timer?: NodeJS.Timeout;
  private stopped = true;
  /** Connections with a ping under way: a slow answer is not asked for twice. */
  private readonly pinging = new WeakSet<Connection>();
  /** When the peer was last heard from on each connection (performance.now()). */
  private readonly heard = new WeakMap<Connection, number>();
  private warnedNoMuxer = false;

  constructor(
    private readonly libp2p: Connections,
    private readonly log: Logger,
    private readonly opts: LivenessOptions,
  ) {}

  start(): void {
    this.stopped = false;
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    const half = this.opts.intervalMs / 2;
    const due = (Math.floor(Date.now() / half) + 1) * half;
    this.timer = setTimeout(() => {
      this.tick(Math.round(due / half) % 2 === 0 ? 'outbound' : 'inbound');
      if (!this.stopped) this.schedule();
    }, due - Date.now());
    this.timer.unref();
  }

  /** Pings every open connection of this direction that has been quiet and has no ping under way. */
  private tick(direction: Connection['direction']): void {
    const now = performance.now();
    for (const conn of this.libp2p.getConnections()) {
      if (conn.status !== 'open') continue;
      const muxer = muxerOf(conn);
      if (muxer === undefined) {
        if (!this.warnedNoMuxer) this.log.warn({ multiplexer: conn.multiplexer }, 'connection muxer cannot ping: dead peers are not noticed on it');
        this.warnedNoMuxer = true;
        continue;
      }
      const heard = this.heard.get(conn) ?? this.listen(conn, muxer, now);
      if (conn.direction !== direction || this.pinging.has(conn)) continue;
      if (heard !== undefined && now - heard < this.opts.intervalMs * QUIET_SHARE) continue;
      this.ping(conn, muxer);
    }
  }

  /** Starts noting when the peer is heard from; undefined when the muxer does not tell (then it is always pinged). */
  private listen(conn: Connection, muxer: PingingMuxer, now: number): number | undefined {
    if (muxer.maConn === undefined) return undefined;
    muxer.maConn.addEventListener('message', () => this.heard.set(conn, performance.now()));
    this.heard.set(conn, now); // just seen open: as good as heard
    return now;
  }

  private ping(conn: Connection, muxer: PingingMuxer): void {
    this.pinging.add(conn);
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(new Error('timed out')), this.opts.timeoutMs);
    muxer.ping({ signal: deadline.signal }).then(
      (rtt) => (conn.rtt = rtt),
      (err: Error) => {
        if (conn.status !== 'open') return; // closed meanwhile: nothing to drop
        this.log.info({ peer: conn.remotePeer.toString(), err: err.message }, 'peer did not answer a ping; dropping the connection');
        conn.abort(new Error(`no answer to a ping within ${this.opts.timeoutMs} ms`, { cause: err }));
      },
    ).finally(() => {
      clearTimeout(timer);
      this.pinging.delete(conn);
    });
  }
}
