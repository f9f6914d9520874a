// The fleet harness itself: a 4-host fleet forms one mesh, keeps its traffic on its own addresses, and leaves
// nothing behind; hosts run the TCP congestion control asked for; crashed runs are cleaned at the next up; the
// CLI's fleet outlives the CLI until `down`.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { exec, tryExec } from './exec.js';
import { Fleet } from './fleet.js';
import { repoRoot, runNames } from './layout.js';
import { isAlive } from '../helpers/procfs.js';
import { leftovers } from './cleanup.js';

/** Everything of run that the system's own tools still show; [] when the run left nothing behind. */
async function traces(run: string, pids: number[]): Promise<string[]> {
  const { prefix, dir } = runNames(run);
  const found: string[] = [];
  for (const line of (await exec('ip', ['netns', 'list'])).split('\n')) if (line.startsWith(prefix)) found.push(`netns ${line}`);
  for (const line of (await exec('ip', ['-o', 'link', 'show'])).split('\n')) if (line.includes(` ${prefix}`)) found.push(`link ${line}`);
  const pgrep = await tryExec('pgrep', ['-af', dir]);
  if (pgrep.code === 0) found.push(`pgrep: ${pgrep.stdout.trim()}`);
  for (const pid of pids) if (await isAlive(pid)) found.push(`pid ${pid} alive`);
  for (const line of readFileSync('/proc/mounts', 'utf8').split('\n')) if (line.includes(dir)) found.push(`mount ${line}`);
  if (existsSync(dir)) found.push(`dir ${dir}`);
  return found;
}

describe('a fleet of 4 hosts', () => {
  let fleet: Fleet | undefined;

  beforeAll(async () => {
    fleet = await Fleet.up(4, { waitFor: 'full-mesh' });
  });
  afterAll(async () => {
    await fleet?.down();
  });

  it('forms one mesh: every meshd sees the other three', async () => {
    const hosts = fleet!.hosts;
    expect(new Set(hosts.map((h) => h.peerId)).size).toBe(4);
    for (const h of hosts) {
      const peers = await h.peers(); // meshctl --json peers, inside the host
      expect(peers.map((p) => p.id).sort(), `${h.name}'s peers`).toEqual(hosts.filter((o) => o !== h).map((o) => o.peerId).sort());
      expect(peers.map((p) => p.info?.name).sort()).toEqual(hosts.filter((o) => o !== h).map((o) => o.name).sort());
    }
  });

  it("keeps each host's traffic on loopback and the fleet's own /24", async () => {
    for (const h of fleet!.hosts) {
      // No default route: nothing but the fleet's /24, link-local multicast (mDNS) and the host's own addresses.
      const routes = (await h.exec('ip', ['-4', 'route', 'show', 'table', 'all'])).split('\n').map((l) => l.trim())
        .filter((l) => l && !l.startsWith('local ') && !l.startsWith('broadcast '));
      expect(routes.sort(), `${h.name}'s routes`).toEqual([
        `${fleet!.cidr} dev eth0 proto kernel scope link src ${h.address}`,
        '224.0.0.0/4 dev eth0 scope link',
      ].sort());
      const addrs = (await h.exec('ip', ['-o', 'addr', 'show'])).split('\n').filter(Boolean).map((l) => l.split(/\s+/).slice(1, 4).join(' '));
      expect(addrs, `${h.name}'s addresses`).toEqual(['lo inet 127.0.0.1/8', `eth0 inet ${h.address}/24`]);
    }
  });

  it('leaves no namespace, link, process, mount or directory behind after down', async () => {
    const f = fleet!;
    const pids = f.hosts.flatMap((h) => [h.containerdPid, h.meshdPid]);
    expect(pids.every((p) => p > 0)).toBe(true);
    expect((await traces(f.run, pids)).length).toBeGreaterThan(0); // the check sees a live fleet
    await f.down();
    expect(await traces(f.run, pids)).toEqual([]);
    expect(await f.leftovers()).toEqual([]);
  });
});

describe("the hosts' TCP congestion control", () => {
  const sysctl = (name: string) => readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim();

  it('is what up() names, in every host, the machine keeping its own', async () => {
    const machine = sysctl('tcp_congestion_control');
    // One the machine lets every namespace use, other than its own where it can (usually reno).
    const wanted = sysctl('tcp_allowed_congestion_control').split(' ').find((a) => a !== machine) ?? machine;
    const fleet = await Fleet.up(2, { tcp: wanted, waitFor: 'none' });
    try {
      for (const h of fleet.hosts) expect((await h.exec('sysctl', ['-n', 'net.ipv4.tcp_congestion_control'])).trim(), h.name).toBe(wanted);
      expect(sysctl('tcp_congestion_control')).toBe(machine);
    } finally {
      await fleet.down();
    }
  });

  it('fails naming the sysctl to run when the machine does not allow it, and leaves nothing behind', async () => {
    const err = await Fleet.up(1, { tcp: 'no-such-tcp', waitFor: 'none' }).then(() => undefined, (e: Error) => e);
    expect(err?.message).toMatch(/cannot use TCP congestion control no-such-tcp .*sysctl -w net\.ipv4\.tcp_allowed_congestion_control="[^"]* no-such-tcp"/);
    const run = /fleet (\S+): host h1/.exec(err!.message)![1];
    expect(await traces(run, [])).toEqual([]);
  });
});

describe('cleanup of crashed runs', () => {
  it('removes what a killed owner left, at the next up', async () => {
    // A separate Node.js process brings up a 1-host fleet from the build and is then killed: nobody runs down().
    const index = `${repoRoot()}/dist/test/fleet/index.js`;
    const child = spawn(process.execPath, ['--input-type=module', '-e',
      `const { Fleet } = await import(${JSON.stringify(index)});
       const f = await Fleet.up(1);
       console.log(JSON.stringify({ run: f.run, pids: [f.host(1).containerdPid, f.host(1).meshdPid] }));
       setInterval(() => {}, 60_000);`], { stdio: ['ignore', 'pipe', 'inherit'] });
    // Also when the test times out before it kills the owner: the owner would live on, its fleet with it.
    onTestFinished(() => void child.kill('SIGKILL'));
    const exited = new Promise((r) => child.once('exit', r));
    const first = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout! }).once('line', resolve);
      child.once('exit', (code) => reject(new Error(`the owner process exited (${code}) before its fleet was up`)));
    });
    const crashed = JSON.parse(first) as { run: string; pids: number[] };
    child.kill('SIGKILL');
    await exited;
    expect(await leftovers(crashed.run)).not.toEqual([]); // its daemons still run, its namespace exists

    const next = await Fleet.up(1);
    try {
      expect(await traces(crashed.run, crashed.pids)).toEqual([]);
    } finally {
      await next.down();
    }
  });
});

describe('the fleet CLI', () => {
  it('leaves the fleet running after `up` exits, and `down --run` removes it', async () => {
    const cli = `${repoRoot()}/dist/test/fleet/cli.js`;
    const up = await exec(process.execPath, [cli, 'up', '2']);
    const run = /^fleet ([0-9a-f]{4}) is up: 2 host/m.exec(up)?.[1];
    expect(run, up).toBeDefined();
    try {
      const { marker } = runNames(run!);
      const state = JSON.parse(readFileSync(marker, 'utf8')) as { detached: boolean; hosts: { ns: string; peerId: string; meshdPid: number }[] };
      expect(state.detached).toBe(true);
      expect(up).toContain(state.hosts[0].peerId);
      expect(up).toContain(`ip netns exec ${state.hosts[0].ns}`);
      for (const h of state.hosts) expect(await isAlive(h.meshdPid)).toBe(true); // the CLI is gone, the hosts are not
      const status = await exec(process.execPath, [cli, 'status']);
      expect(status).toContain(`fleet ${run}: 2 host(s)`);
      expect(await exec(process.execPath, [cli, 'down', '--run', run!])).toContain(`fleet ${run} removed`);
      expect(await traces(run!, state.hosts.map((h) => h.meshdPid))).toEqual([]);
    } finally {
      if (run) await exec(process.execPath, [cli, 'down', '--run', run]).catch(() => {});
    }
  });
});
