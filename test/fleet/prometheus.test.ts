// meshd's metrics through a real Prometheus (Debian's), started on loopback with a 1 s scrape of a 3-host fleet
// whose registries let the fleet's bridge read. A push to host 1 replicates to hosts 2 and 3, and host 3 pulls a
// blob only host 1 holds through its mirror: Prometheus's answers must add up to exactly that. The Grafana
// dashboard's expressions must all name metrics meshd exports.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensurePackages } from '../helpers/apt.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { freePort } from '../helpers/ports.js';
import { Fleet, REGISTRY_ADDR, waitFor } from './index.js';

const KiB = 1024;
const dashboard = JSON.parse(readFileSync(new URL('../../deploy/grafana-dashboard.json', import.meta.url), 'utf8')) as {
  panels: { title: string; targets: { expr: string }[] }[];
};

/** One instant query; its series as {labels, value}. */
async function query(base: string, expr: string): Promise<{ metric: Record<string, string>; value: number }[]> {
  const res = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  if (body.status !== 'success') throw new Error(`prometheus: ${expr}: ${JSON.stringify(body)}`);
  return body.data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}

/** Each host's value of an expression summed by `host`. */
async function perHost(base: string, expr: string): Promise<Record<string, number>> {
  return Object.fromEntries((await query(base, `sum by (host) (${expr})`)).map((r) => [r.metric.host, r.value]));
}

describe('metrics in Prometheus', () => {
  let fleet: Fleet;
  let pushed: BuiltImage;
  let mirrored: BuiltImage;
  let prometheus: ChildProcess | undefined;
  let base = '';
  const dir = mkdtempSync(join(tmpdir(), 'lm-prom-'));

  beforeAll(async () => {
    await ensurePackages({ prometheus: 'prometheus', curl: 'curl' });
    pushed = buildImage({ layerSizes: [900 * KiB, 300 * KiB], tag: '1' });
    mirrored = buildImage({ layerSizes: [500 * KiB], tag: '1' });
    fleet = await Fleet.up(3, {
      waitFor: 'full-mesh',
      // Prometheus scrapes from the root namespace: its address on the bridge may read.
      meshdArgs: (_i, net) => ['--registry-addr', '0.0.0.0:5000', '--registry-allow', `${net.bridge}/32`],
    });
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    const targets = fleet.hosts.map((h) => `{ targets: ['${h.address}:5000'], labels: { host: '${h.name}' } }`);
    writeFileSync(join(dir, 'prometheus.yml'), [
      'global: { scrape_interval: 1s, scrape_timeout: 900ms }',
      'scrape_configs:',
      `  - job_name: layermesh`,
      `    static_configs: [${targets.join(', ')}]`,
      '',
    ].join('\n'));
    prometheus = spawn('prometheus', [
      `--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ], { stdio: ['ignore', 'ignore', 'pipe'] });
    await waitFor('prometheus to scrape all three hosts', async () =>
      (await query(base, 'up{job="layermesh"} == 1').catch(() => [])).length === 3, { timeoutMs: 60_000 });
  }, 300_000);

  afterAll(async () => {
    prometheus?.kill();
    await fleet?.down();
    for (const d of [dir, pushed?.dir, mirrored?.dir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  it('counts what a replication and a mirror pull moved, per host', async () => {
    const [h1, h2, h3] = fleet.hosts;
    await h1.loadImage(mirrored, { repo: 'docker.io/library/only-on-h1' });
    await h1.skopeo(['copy', '--dest-tls-verify=false', `oci:${pushed.dir}:1`, `docker://${REGISTRY_ADDR}/app:1`]);
    for (const h of [h2, h3]) {
      await waitFor(`${h.name} to hold app:1`, async () => (await h.http('/v2/app/manifests/1')).status === 200);
    }
    const layer = mirrored.layers[0];
    await waitFor('host 3 to see that host 1 holds the layer', async () => (await h3.whoHas(layer.digest)).some((p) => p.id === h1.peerId));
    expect((await h3.http(`/v2/only-on-h1/blobs/${layer.digest}`)).status).toBe(200);
    expect((await h3.http(`/v2/only-on-h1/blobs/sha256:${'0'.repeat(64)}`)).status).toBe(404);

    const blobBytes = pushed.blobs.filter((b) => b.digest !== pushed.digest).reduce((n, b) => n + b.size, 0);
    const want = {
      replicated: { h2: blobBytes, h3: blobBytes, h1: 0 },
      images: { h2: 1, h3: 1 }, // host 1 replicated nothing: it has no series of that label
      mirror: { peer: 1, not_found: 1 },
      meshBytes: layer.size,
    };
    let got: unknown;
    await waitFor('Prometheus to show what happened', async () => {
      got = {
        replicated: await perHost(base, 'layermesh_replicated_bytes_total'),
        images: await perHost(base, 'layermesh_replications_total{outcome="replicated"}'),
        mirror: Object.fromEntries((await query(base, 'sum by (outcome) (layermesh_mirror_requests_total{host="h3"})')).map((r) => [r.metric.outcome, r.value])),
        meshBytes: (await query(base, 'sum(layermesh_registry_sent_bytes_total{host="h3", source="mesh"})'))[0]?.value,
      };
      return isDeepStrictEqual(got, want);
    }, { timeoutMs: 30_000 }).catch(() => {
      const served = h3.logLines().filter((l) => l.digest === layer.digest || Number(l.level) >= 40);
      expect(got, `h3's log of the pull:\n${served.map((l) => JSON.stringify(l)).join('\n')}`).toEqual(want);
    });
    const inProgress = await perHost(base, 'layermesh_replications_in_progress');
    expect(inProgress).toEqual({ h1: 0, h2: 0, h3: 0 });
  });

  it('has a dashboard whose every expression names metrics meshd exports', async () => {
    const exported = new Set<string>();
    for (const line of (await fleet.hosts[0].http('/metrics')).body.split('\n')) {
      const m = /^# TYPE (\S+) (\w+)/.exec(line);
      if (!m) continue;
      exported.add(m[1]);
      if (m[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(m[1] + s);
    }
    const exprs = dashboard.panels.flatMap((p) => p.targets.map((t) => ({ panel: p.title, expr: t.expr })));
    expect(exprs.length).toBeGreaterThan(5);
    for (const { panel, expr } of exprs) {
      const names = expr.match(/\blayermesh_\w+/g) ?? [];
      expect(names.length, `${panel}: ${expr}`).toBeGreaterThan(0);
      for (const name of names) expect(exported, `${panel}: ${name}`).toContain(name);
      // Prometheus itself parses it.
      expect((await query(base, expr.replaceAll('$__rate_interval', '5s'))).constructor).toBe(Array);
    }
  });
});
