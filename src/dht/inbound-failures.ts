// Logs inbound p2p connections that never became libp2p connections: garbage on the port, an HTTP client, a peer
// without the swarm key, a handshake that timed out. libp2p resets them and says nothing above debug level. Also
// refuses connections from an address that has too many handshakes under way.
import type { ConnectionGater, MultiaddrConnection, StreamCloseEvent } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import { LogRateLimiter, type LogRateLimiterOptions } from '../util/log-rate-limiter.js';

/**
 * Handshakes one address may have under way at once (a quarter of the 256 libp2p has for all). A handshake takes
 * milliseconds to a second; a fleet behind one NAT that all redial a restarted node at once may meet it, and dials
 * again after a moment.
 */
const MAX_HANDSHAKES_PER_IP = 64;

export interface InboundFailureLog {
  /** Install as libp2p's `connectionGater`: it denies only an address's handshakes past MAX_HANDSHAKES_PER_IP, and watches. */
  gater: ConnectionGater;
  /** Stop logging (before the node stops: stopping aborts handshakes still under way, which is no peer's fault). */
  close(): void;
}

/**
 * libp2p v3 emits no event for an inbound connection whose upgrade fails. The connection gater is the documented
 * hook that sees every inbound connection the connection manager accepted (with its remote address) before the
 * upgrade, and again once it is upgraded; a connection that closes in between failed, and the upgrade error is the
 * `error` of its 'close' event (the tcp listener aborts the connection with it).
 */
export function inboundFailureLog(log: Logger, opts: { swarmKey: boolean; limits?: LogRateLimiterOptions }): InboundFailureLog {
  const limiter = new LogRateLimiter(opts.limits);
  // Behind pnet, a peer with another key (or none) looks like garbage to multistream-select: say so.
  const hint = opts.swarmKey ? { hint: 'not a member: a peer without this swarm key, or not a libp2p peer' } : {};
  const pending = new WeakMap<MultiaddrConnection, { ip: string; onClose: (evt: StreamCloseEvent) => void }>();
  /** Handshakes under way, by remote IP: libp2p's cap on them is for all addresses together. */
  const underWay = new Map<string, number>();
  let closed = false;

  /** The handshake of `maConn` is over: upgraded, or closed. */
  const settle = (maConn: MultiaddrConnection): void => {
    const entry = pending.get(maConn);
    if (entry === undefined) return;
    pending.delete(maConn);
    maConn.removeEventListener('close', entry.onClose);
    const n = (underWay.get(entry.ip) ?? 1) - 1;
    if (n > 0) underWay.set(entry.ip, n);
    else underWay.delete(entry.ip);
  };

  const report = (remoteAddr: Multiaddr, error: Error | undefined): void => {
    if (closed) return;
    const { ip, remote } = addressOf(remoteAddr);
    const admitted = limiter.admit(ip);
    if (admitted === undefined) return;
    const reason = error === undefined ? 'closed by the remote during the handshake' : describe(error);
    const counts = {
      ...(admitted.suppressed > 0 ? { suppressed: admitted.suppressed } : {}),
      ...(admitted.suppressedOthers > 0 ? { suppressedOthers: admitted.suppressedOthers } : {}),
    };
    log.warn({ remote, reason, ...hint, ...counts }, 'inbound p2p connection failed before the libp2p handshake completed');
  };

  const gater: ConnectionGater = {
    denyInboundConnection(maConn) {
      if (closed) return false;
      // One address holding connections open without a handshake (a non-member: 26 a second, each held for the
      // 10 s upgrade timeout) would otherwise take every slot libp2p has for them, and keep members out.
      const { ip } = addressOf(maConn.remoteAddr);
      const n = underWay.get(ip) ?? 0;
      if (n >= MAX_HANDSHAKES_PER_IP) {
        report(maConn.remoteAddr, new Error(`more than ${MAX_HANDSHAKES_PER_IP} handshakes under way from this address`));
        return true;
      }
      underWay.set(ip, n + 1);
      const onClose = (evt: StreamCloseEvent) => {
        settle(maConn);
        report(maConn.remoteAddr, evt.error);
      };
      pending.set(maConn, { ip, onClose });
      maConn.addEventListener('close', onClose, { once: true });
      return false;
    },
    denyInboundUpgradedConnection(_peer, maConn) {
      settle(maConn);
      return false;
    },
  };

  return {
    gater,
    close() {
      closed = true;
    },
  };
}

/** `ip` keys the rate limit; `remote` is ip:port for tcp, the multiaddr for anything else. */
function addressOf(addr: Multiaddr): { ip: string; remote: string } {
  const parts = addr.getComponents();
  const ip = parts.find((c) => c.name === 'ip4' || c.name === 'ip6')?.value;
  const port = parts.find((c) => c.name === 'tcp')?.value;
  if (ip === undefined) return { ip: addr.toString(), remote: addr.toString() };
  if (port === undefined) return { ip, remote: addr.toString() };
  return { ip, remote: ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}` };
}

function describe(err: Error): string {
  return err.name === 'Error' ? err.message : `${err.name}: ${err.message}`;
}
