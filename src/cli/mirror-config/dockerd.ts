// What dockerd needs to pull through meshd: it takes no hosts.toml (unless it uses the containerd image store),
// only a registry-mirrors entry in daemon.json, which this advice spells out; nothing is written.

export interface DockerdAdvice {
  file: string;
  daemonJson: { 'registry-mirrors': string[] };
  /** plain HTTP to a non-loopback address needs an insecure-registries entry; Docker trusts 127.0.0.0/8 and ::1 */
  insecureRegistriesNeeded: boolean;
  limits: string;
  /** where dockerd with the containerd image store (Engine 28+) reads hosts.toml files */
  certsDir: string;
}

export function dockerdAdvice(mirrorUrl: string): DockerdAdvice {
  const { protocol, hostname } = new URL(mirrorUrl);
  const loopback = hostname === 'localhost' || hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(hostname);
  return {
    file: '/etc/docker/daemon.json',
    daemonJson: { 'registry-mirrors': [mirrorUrl] },
    insecureRegistriesNeeded: protocol === 'http:' && !loopback,
    limits: 'dockerd sends only Docker Hub pulls to its registry-mirrors: pulls from other registries do not go through meshd',
    certsDir: '/etc/docker/certs.d',
  };
}
