// The fleet's network: one bridge in the root namespace and, per host, a network namespace joined to it by a
// veth pair. Hosts get an address on the fleet's own /24 and no default route, so their traffic can only go to
// loopback or to the fleet's addresses (ip_forward stays as it is; nothing is routed or NATed out).
import { readFile, readdir, writeFile } from 'node:fs/promises';
import { exec, tryExec } from './exec.js';
import { bridgeAddress, hostAddress, runNames, subnetCidr } from './layout.js';

const ip = (args: string[], context: string) => exec('ip', args, { context, timeoutMs: 30_000 });

/** IPv6 off on our links: no router solicitations or multicast listener reports leave a host. */
async function disableIpv6InRoot(dev: string): Promise<void> {
  await writeFile(`/proc/sys/net/ipv6/conf/${dev}/disable_ipv6`, '1').catch(() => {}); // kernel without IPv6
}

export async function createBridge(run: string, subnet: number): Promise<void> {
  const { bridge } = runNames(run);
  const ctx = `fleet ${run}: bridge ${bridge}`;
  await ip(['link', 'add', 'name', bridge, 'type', 'bridge'], ctx);
  await disableIpv6InRoot(bridge);
  await ip(['addr', 'add', `${bridgeAddress(subnet)}/24`, 'dev', bridge], ctx);
  await ip(['link', 'set', bridge, 'up'], ctx);
}

/**
 * TCP congestion control in a host's namespace. A namespace starts with the root namespace's, and may switch only
 * to what the root allows every namespace (a host-wide setting this harness leaves to the operator).
 */
async function setCongestionControl(ns: string, algorithm: string, ctx: string): Promise<void> {
  const res = await tryExec('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv4.tcp_congestion_control=${algorithm}`]);
  if (res.code === 0) return;
  const allowed = (await readFile('/proc/sys/net/ipv4/tcp_allowed_congestion_control', 'utf8')).trim();
  throw new Error(`${ctx}: cannot use TCP congestion control ${algorithm} (${res.stderr.trim()}); a namespace may use only what `
    + `net.ipv4.tcp_allowed_congestion_control lists (${allowed}): as root, sysctl -w net.ipv4.tcp_allowed_congestion_control="${allowed} ${algorithm}"`);
}

/**
 * Namespace lm-<run>-h<i> with `lo` up and `eth0` = <net>.<i>/24, plugged into the bridge, and TCP congestion
 * control `tcp` when given (else the root namespace's).
 */
export async function createHostNetwork(run: string, subnet: number, i: number, tcp?: string): Promise<void> {
  const names = runNames(run);
  const ns = names.ns(i);
  const veth = names.veth(i);
  const ctx = `fleet ${run}: host h${i} (${ns})`;
  await ip(['netns', 'add', ns], ctx);
  if (tcp) await setCongestionControl(ns, tcp, ctx);
  // Set before eth0 arrives: a device moved into a namespace takes that namespace's defaults.
  await exec('ip', ['netns', 'exec', ns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1'], { context: ctx })
    .catch(() => {}); // kernel without IPv6
  await ip(['link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns], ctx);
  await disableIpv6InRoot(veth);
  await ip(['link', 'set', veth, 'master', names.bridge, 'up'], ctx);
  await ip(['-n', ns, 'addr', 'add', `${hostAddress(subnet, i)}/24`, 'dev', 'eth0'], ctx);
  await ip(['-n', ns, 'link', 'set', 'eth0', 'up'], ctx);
  await ip(['-n', ns, 'link', 'set', 'lo', 'up'], ctx);
  // Multicast (mDNS) needs a route too; link-scoped, so it stays on the fleet's segment like on a real LAN.
  await ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0', 'scope', 'link'], ctx);
}

/** Unplugs host i: its veth leaves the bridge and goes down, like a pulled cable. */
export async function disconnectHost(run: string, i: number): Promise<void> {
  const veth = runNames(run).veth(i);
  const ctx = `fleet ${run}: disconnect h${i}`;
  await ip(['link', 'set', veth, 'down'], ctx);
  await ip(['link', 'set', veth, 'nomaster'], ctx);
}

export async function reconnectHost(run: string, i: number): Promise<void> {
  const names = runNames(run);
  await ip(['link', 'set', names.veth(i), 'master', names.bridge, 'up'], `fleet ${run}: reconnect h${i}`);
}

export async function isConnected(run: string, i: number): Promise<boolean> {
  const names = runNames(run);
  const out = await ip(['-o', 'link', 'show', 'dev', names.veth(i)], `fleet ${run}: h${i}`);
  return out.includes(`master ${names.bridge}`) && /[<,]UP[,>]/.test(out);
}

/** Namespace names of this run that exist. */
export async function runNamespaces(run: string): Promise<string[]> {
  const { prefix } = runNames(run);
  // /run/netns is what `ip netns list` reads; reading it directly spares a process per call.
  const entries = await readdir('/run/netns').catch(() => [] as string[]);
  return entries.filter((n) => n.startsWith(prefix));
}

/** Root-namespace links of this run (bridge and host-side veths) that exist. */
export async function runLinks(run: string): Promise<string[]> {
  const { prefix } = runNames(run);
  const entries = await readdir('/sys/class/net').catch(() => [] as string[]);
  return entries.filter((n) => n.startsWith(prefix));
}

/** Deletes the run's links and namespaces; what is already gone is fine. */
export async function removeRunNetwork(run: string): Promise<void> {
  // Links first: deleting a veth end deletes its peer at once, whereas a deleted namespace is dismantled
  // asynchronously by the kernel and its veth would linger for a moment. The bridge last.
  const links = (await runLinks(run)).sort((a, b) => Number(a.endsWith('-br')) - Number(b.endsWith('-br')));
  for (const link of links) {
    const res = await tryExec('ip', ['link', 'del', link]);
    if (res.code !== 0 && (await runLinks(run)).includes(link)) {
      throw new Error(`fleet ${run}: cannot delete link ${link}: ${res.stderr.trim()}`);
    }
  }
  for (const ns of await runNamespaces(run)) {
    const res = await tryExec('ip', ['netns', 'del', ns]);
    if (res.code !== 0 && (await runNamespaces(run)).includes(ns)) {
      throw new Error(`fleet ${run}: cannot delete namespace ${ns}: ${res.stderr.trim()}`);
    }
  }
}

/** Third octets of 10.231.x.0/24 networks that this machine already has an address or route in. */
export async function subnetsInUse(): Promise<Set<number>> {
  const out = (await exec('ip', ['-4', '-o', 'addr', 'show'])) + (await exec('ip', ['-4', 'route', 'show', 'table', 'all']));
  const used = new Set<number>();
  for (const m of out.matchAll(/\b10\.231\.(\d{1,3})\./g)) used.add(Number(m[1]));
  return used;
}

export { subnetCidr };
