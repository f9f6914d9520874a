// Notices a peer that went away (host off the network, meshd paused or killed without a FIN) and drops its
// connection, so that the mesh forgets it. It replaces libp2p's connection monitor, which pings each
// connection from both ends every 10 s over a new stream (yamux open, multistream-select, ping protocol,
// close): ~3 ms of CPU per ping on both ends, the bulk of what an idle node spent. Here a ping is one yamux
// Ping frame and its answer, on the connection's muxer: no stream, no negotiation. The peer's yamux answers
// it from its event loop, so a paused process is noticed too (which TCP keep-alive would not).
import type { Connection } from '@libp2p/interface';
import type { Logger } from 'pino';

export interface LivenessOptions {
  /** How often every connection is pinged. */
  intervalMs: number;
  /** A ping unanswered for this long drops the connection: a dead peer is dropped within interval + timeout. */
  timeoutMs: number;
}

/** The part of libp2p liveness uses. */
export interface Connections {
  getConnections(): Connection[];
}

/** yamux's muxer, as libp2p's Connection holds it (not part of the Connection interface). */
interface PingingMuxer {
  ping(options: { signal: AbortSignal }): Promise<number>;
}

function muxerOf(conn: Connection): PingingMuxer | undefined {
  const muxer = (conn as { muxer?: Partial<PingingMuxer> }).muxer;
  return typeof muxer?.ping === 'function' ? (muxer as PingingMuxer) : undefined;
}

export class Liveness {
  private timer?: NodeJS.Timeout;
  /** Connections with a ping under way: a slow answer is not asked for twice. */
  private readonly pinging = new WeakSet<Connection>();
  private warnedNoMuxer = false;

  constructor(
    private readonly libp2p: Connections,
    private readonly log: Logger,
    private readonly opts: LivenessOptions,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.tick(), this.opts.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** Pings every open connection that has no ping under way. */
  private tick(): void {
    for (const conn of this.libp2p.getConnections()) {
      if (conn.status !== 'open' || this.pinging.has(conn)) continue;
      const muxer = muxerOf(conn);
      if (muxer === undefined) {
        if (!this.warnedNoMuxer) this.log.warn({ multiplexer: conn.multiplexer }, 'connection muxer cannot ping: dead peers are not noticed on it');
        this.warnedNoMuxer = true;
        continue;
      }
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
}
