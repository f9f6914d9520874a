// Who is at the other end of a loopback TCP connection: the kernel lists every socket of this network
// namespace in /proc/net/tcp{,6} with the uid that owns it, so the client's own socket (its port, our
// port) names the user behind a request, as SO_PEERCRED does for a unix socket. The client cannot
// choose that uid; it is the one of the process that opened the connection.
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';

const ESTABLISHED = '01';

/** /proc's spelling of a loopback address: 32-bit words in host (little-endian) byte order, hex. */
function procAddress(ip: string): string[] {
  const v4 = /^(?:::ffff:)?(\d+)\.(\d+)\.(\d+)\.(\d+)$/i.exec(ip);
  if (v4) {
    const word = v4.slice(1).map((b) => Number(b).toString(16).padStart(2, '0')).reverse().join('').toUpperCase();
    return [word, `0000000000000000FFFF0000${word}`];
  }
  if (ip === '::1') return ['00000000000000000000000001000000'];
  return [];
}

function procPort(port: number): string {
  return port.toString(16).padStart(4, '0').toUpperCase();
}

/**
 * The uid owning the client end of `socket`, a connection accepted on loopback; undefined when the
 * kernel does not list it (it closed meanwhile, or the client is not on this host's loopback).
 */
export async function loopbackClientUid(socket: Socket): Promise<number | undefined> {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (!remoteAddress || !remotePort || !localAddress || !localPort) return undefined;
  const clients = new Set(procAddress(remoteAddress).map((a) => `${a}:${procPort(remotePort)}`));
  const servers = new Set(procAddress(localAddress).map((a) => `${a}:${procPort(localPort)}`));
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const [, local, remote, state, , , , uid] = line.trim().split(/\s+/);
      if (state === ESTABLISHED && clients.has(local) && servers.has(remote)) return Number(uid);
    }
  }
  return undefined;
}
