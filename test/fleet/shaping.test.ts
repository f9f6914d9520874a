// Link shaping between two fleet hosts, measured the way a benchmark would see it: HTTP throughput,
// UDP loss, TCP connect time. Servers run on the hosts' fleet addresses (meshd's registry is on loopback).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/wait.js';
import { Fleet } from './fleet.js';
import type { FleetHost } from './host.js';
import { shapingCommands } from './shaping.js';

const PORT = 8080;
const BYTES = 8_000_000;

// Serves BYTES bytes on every request, from the host's fleet address.
const SERVER = `const http = require('node:http');
const [addr, n] = [process.argv[1], Number(process.argv[2])];
const chunk = Buffer.alloc(1 << 16, 7);
http.createServer((req, res) => {
  res.writeHead(200, { 'content-length': n });
  let left = n;
  const pump = () => {
    while (left > 0) {
      const c = chunk.subarray(0, Math.min(left, chunk.length));
      left -= c.length;
      if (!res.write(c)) return void res.once('drain', pump);
    }
    res.end();
  };
  pump();
}).listen(${PORT}, addr);`;

// Sends N datagrams to addr:9999 (nobody listens: the kernel counts them as NoPorts), paced so that no
// queue on the way overflows.
const SENDER = `const s = require('node:dgram').createSocket('udp4');
const [addr, n] = [process.argv[1], Number(process.argv[2])];
let i = 0;
const burst = () => {
  for (let k = 0; k < 25 && i < n; k++, i++) s.send(Buffer.alloc(200), 9999, addr);
  if (i < n) setTimeout(burst, 5); else setTimeout(() => process.exit(0), 200);
};
burst();`;

/**
 * UDP datagrams that reached the host's UDP layer, and that left it, by the kernel's own counters: a busy
 * machine may delay a receiving process, but not these.
 */
async function udpCounters(h: FleetHost): Promise<{ arrived: number; sent: number }> {
  const [names, values] = (await h.exec('cat', ['/proc/net/snmp'])).split('\n').filter((l) => l.startsWith('Udp:')).map((l) => l.split(/\s+/).slice(1));
  const v = (name: string) => Number(values[names.indexOf(name)]);
  return { arrived: v('InDatagrams') + v('NoPorts') + v('InErrors'), sent: v('OutDatagrams') };
}

/** GETs the test server of `from` from host `to`; Mbit/s of the body, and the TCP connect time. */
async function transfer(to: FleetHost, from: FleetHost): Promise<{ mbit: number; connectS: number }> {
  const out = await to.exec('curl', ['-sS', '-o', '/dev/null', '--max-time', '30', '-w', '%{size_download} %{time_connect} %{time_total}', `http://${from.address}:${PORT}/`]);
  const [size, connect, total] = out.trim().split(' ').map(Number);
  expect(size).toBe(BYTES);
  return { mbit: (size * 8) / (total - connect) / 1e6, connectS: connect };
}

describe('link shaping between two hosts', () => {
  let fleet: Fleet | undefined;
  let h1: FleetHost, h2: FleetHost;

  beforeAll(async () => {
    fleet = await Fleet.up(2);
    [h1, h2] = fleet.hosts;
    for (const h of [h1, h2]) h.spawn(process.execPath, ['-e', SERVER, h.address, String(BYTES)]);
    for (const [a, b] of [[h1, h2], [h2, h1]]) {
      await waitFor(`${a.name} to reach the server on ${b.name}`, async () => (await a.tryExec('curl', ['-s', '-o', '/dev/null', '--max-time', '2', `http://${b.address}:${PORT}/`])).code === 0);
    }
  });
  afterAll(async () => {
    await fleet?.down();
  });

  it('limits bandwidth to the configured rate in both directions, and unshape lifts it', async () => {
    const rate = 40;
    await h1.shape({ rateMbit: rate });
    const up = await transfer(h2, h1); // h1 sends: limited by h1's eth0
    const down = await transfer(h1, h2); // h1 receives: limited by the bridge end of h1's link
    for (const [what, got] of [['h1 → h2', up.mbit], ['h2 → h1', down.mbit]] as const) {
      // htb counts headers too, so the payload gets a little less than the rate.
      expect(got, `${what} Mbit/s at ${rate} Mbit/s`).toBeGreaterThan(rate * 0.8);
      expect(got, `${what} Mbit/s at ${rate} Mbit/s`).toBeLessThan(rate * 1.03);
    }
    await h1.unshape();
    expect((await transfer(h2, h1)).mbit, 'unshaped Mbit/s').toBeGreaterThan(rate * 3);
  });

  it('drops the configured share of packets', async () => {
    await h1.shape({ lossPct: 20 });
    try {
      const [before1, before2] = [await udpCounters(h1), await udpCounters(h2)];
      await h2.exec(process.execPath, ['-e', SENDER, h1.address, '3000']);
      const [after1, after2] = [await udpCounters(h1), await udpCounters(h2)];
      const sent = after2.sent - before2.sent;
      const arrived = after1.arrived - before1.arrived;
      expect(sent).toBe(3000);
      // 3000 draws at p = 0.8: the standard deviation is 22 datagrams; allow about 5 of them.
      expect(arrived / sent).toBeGreaterThan(0.76);
      expect(arrived / sent).toBeLessThan(0.84);
    } finally {
      await h1.unshape();
    }
  });

  it('adds latency with netem, or says clearly that the kernel has no netem', async () => {
    const base = (await transfer(h2, h1)).connectS;
    const shaped: true | Error = await h1.shape({ delayMs: 25 }).then(() => true as const, (err: Error) => err);
    try {
      if (shaped === true) {
        // One-way delay on h1's link, both directions: the handshake's round trip gains 50 ms.
        expect((await transfer(h2, h1)).connectS - base).toBeGreaterThan(0.045);
      } else {
        expect(shaped.message).toMatch(/netem.*CONFIG_NET_SCH_NETEM/);
        // A failed shape leaves the link unshaped, not half-configured.
        expect(await h1.exec('tc', ['qdisc', 'show', 'dev', 'eth0'])).not.toMatch(/htb/);
        expect((await transfer(h2, h1)).mbit).toBeGreaterThan(200);
      }
    } finally {
      await h1.unshape();
    }
  });

  it('builds its tc rules from the spec', () => {
    expect(shapingCommands('eth0', { rateMbit: 100 })).toEqual([
      ['qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '10'],
      ['class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:10', 'htb', 'rate', '100000kbit', 'ceil', '100000kbit', 'burst', '50000b', 'cburst', '50000b', 'quantum', '60000'],
    ]);
    const lossy = shapingCommands('eth0', { lossPct: 25 }).at(-1)!;
    expect(lossy.at(-1)).toBe(`4,32 0 0 ${0xfffff038},53 0 1 ${2 ** 30},6 0 0 0,6 0 0 ${0x10020}`);
    expect(() => shapingCommands('eth0', { lossPct: 100 })).toThrow(/lossPct/);
    expect(() => shapingCommands('eth0', { rateMbit: 0 })).toThrow(/rateMbit/);
  });
});
