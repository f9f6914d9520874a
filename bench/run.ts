// `npm run bench`: meshd against Debian's Go docker-registry on this machine, loopback only.
//  1. blob GET throughput (curl into /dev/null) of one large random blob: meshd on containerd, the Go
//     registry, and meshd on its fs store for information; target: meshd ≥ 0.6× docker-registry;
//  2. push time of a multi-layer OCI image with `skopeo copy`, fresh registry each round, and the same blobs
//     written into containerd by its own client (`ctr content ingest`: the floor of any registry on containerd);
//     targets: ≤ 1.11× the Go registry's time on containerd, ≤ 1.0× on the fs store;
//  3. pull of the same image by containerd through the mirror (meshd B fetching from peer meshd A)
//     against containerd pulling it straight from the Go registry; targets (direct time / mirror time):
//     ≥ 0.9 with `ctr images pull`, ≥ 0.8 with `ctr content fetch`, meshd A+B's CPU ≤ 3× the Go registry's;
//     the same pull with both meshd on --peer-plaintext: TLS throughput ≥ 0.85× plaintext's;
//  4. bytes on the wire of pussh after a one-layer change, against `docker save | ssh` of the image;
//  5. re-pushes of a layer right after its manifest was deleted, on containerd (issue 12): must all succeed.
// Prints a table and, last, one JSON line. Exits non-zero on errors and failed re-pushes, not on a missed target.
// Knobs (environment): BENCH_BLOB_MIB=256 BENCH_GET_ROUNDS=5 BENCH_GET_WARMUPS=1
//                      BENCH_PUSH_ROUNDS=3 BENCH_LAYERS_MIB=40,35,30,25,20 BENCH_MIRROR_ROUNDS=3
//                      BENCH_MIRROR_VARIANTS=fetch,pull BENCH_PUSSH_LAYERS_MIB=30,50,15,5
//                      BENCH_REPUSH_ROUNDS=1000 BENCH_REPUSH_LANES=4
//                      BENCH_SKIP=get,push,mirror,pussh,repush (any of them)
//                      BENCH_MESHD_MAIN=/path/to/dist/src/node/main.js (another meshd build, for A/B)
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensurePackages } from '../test/helpers/apt.js';
import { buildImage, type BuiltImage } from '../test/helpers/oci-image.js';
import { cleanupOnSignals, onCleanup, runBench } from './lib/cleanup.js';
import { MESHD_MAIN, startDockerRegistry, startMeshd, startMeshdOnContainerd, type Server } from './lib/servers.js';
import { MB, MiB, envInt, fixed, median, table } from './lib/stats.js';
import { benchMirrorPull, VARIANT_LABEL, type MirrorPullReport, type PullVariant } from './mirror-pull.js';
import { benchGet, writeRandomBlob, type GetResult } from './registry-get.js';
import { benchPusshIncremental, type PusshIncrementalReport } from './pussh-incremental.js';
import { benchRepushRace } from './repush-race.js';
import { benchPush, ctrIngestTarget, type PushResult } from './skopeo-push.js';

const GET_TARGET = 0.6;
/** Issue 18: direct time / mirror time per variant, meshd A+B's CPU at most 3× the Go registry's for the same bytes. */
const MIRROR_TARGETS: Record<PullVariant, number> = { pull: 0.9, fetch: 0.8 };
const MIRROR_CPU_TARGET = 3;
/** Issue 18: push time × the Go registry's, at most (0.9× its speed on containerd, 1.0× on the embedded store). */
const PUSH_TARGETS: Record<string, number> = { 'meshd (containerd)': 1 / 0.9, 'meshd (fs store)': 1 };
/** The data plane over TLS within 15 % of plaintext throughput (plaintext time / TLS time). */
const TLS_TARGET = 0.85;
const MESHD_CTD = 'meshd (containerd)';
const MESHD_FS = 'meshd (fs store)';
const GO_REGISTRY = 'docker-registry (Go)';
const CTR_INGEST = 'containerd alone (ctr ingest)';

const say = (line: string) => console.log(line);

async function getPhase(work: string): Promise<{ results: GetResult[]; blobBytes: number }> {
  const blobBytes = envInt('BENCH_BLOB_MIB', 256) * MiB;
  const file = join(work, 'blob.bin');
  say(`writing a ${blobBytes / MiB} MiB random blob…`);
  const digest = await writeRandomBlob(file, blobBytes);
  const servers: Server[] = [];
  try {
    say('starting docker-registry, containerd + meshd, meshd (fs)…');
    servers.push(await startMeshdOnContainerd(MESHD_CTD));
    servers.push(await startDockerRegistry(GO_REGISTRY));
    servers.push(await startMeshd(MESHD_FS, ['--store', 'fs']));
    const results = await benchGet(servers, { file, size: blobBytes, digest }, {
      rounds: envInt('BENCH_GET_ROUNDS', 5),
      warmups: envInt('BENCH_GET_WARMUPS', 1),
      repo: 'bench/blob',
    }, say);
    return { results, blobBytes };
  } finally {
    for (const s of servers.reverse()) await s.stop();
    await rm(file, { force: true });
  }
}

let builtImage: BuiltImage | undefined;

/** The multi-layer image of the push and mirror phases, built once. */
function benchImage(work: string): BuiltImage {
  if (builtImage) return builtImage;
  const sizes = (process.env.BENCH_LAYERS_MIB ?? '40,35,30,25,20').split(',').map((s) => Number(s) * MiB);
  if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error('BENCH_LAYERS_MIB must be a comma-separated list of positive MiB counts');
  say(`building an OCI image: ${sizes.length} layers, ${sizes.map((s) => s / MiB).join('+')} MiB of random data…`);
  return (builtImage = buildImage({ layerSizes: sizes, tag: 'bench', dir: join(work, 'image') }));
}

async function pushPhase(work: string): Promise<{ results: PushResult[]; imageBytes: number; layers: number }> {
  const image = benchImage(work);
  const sizes = image.layers.map((l) => l.size);
  const imageBytes = image.blobs.reduce((n, b) => n + b.size, 0);
  const results = await benchPush([
    { name: MESHD_CTD, start: () => startMeshdOnContainerd(MESHD_CTD) },
    { name: GO_REGISTRY, start: () => startDockerRegistry(GO_REGISTRY) },
    { name: MESHD_FS, start: () => startMeshd(MESHD_FS, ['--store', 'fs']) },
    ctrIngestTarget(CTR_INGEST),
  ], image, { rounds: envInt('BENCH_PUSH_ROUNDS', 3), repo: 'bench/app' }, say);
  return { results, imageBytes, layers: sizes.length };
}

async function mirrorPhase(work: string): Promise<MirrorPullReport> {
  const variants = (process.env.BENCH_MIRROR_VARIANTS ?? 'fetch,pull').split(',').map((v) => v.trim()) as PullVariant[];
  if (variants.some((v) => !(v in VARIANT_LABEL))) throw new Error('BENCH_MIRROR_VARIANTS must be a comma-separated list of fetch, pull');
  return benchMirrorPull(benchImage(work), { work, rounds: envInt('BENCH_MIRROR_ROUNDS', 3), variants }, say);
}

async function pusshPhase(work: string): Promise<PusshIncrementalReport> {
  // Base system, runtime, dependencies, application: the application layer is the one that changes.
  const sizes = (process.env.BENCH_PUSSH_LAYERS_MIB ?? '30,50,15,5').split(',').map((s) => Number(s) * MiB);
  if (sizes.some((s) => !Number.isInteger(s) || s <= 0)) throw new Error('BENCH_PUSSH_LAYERS_MIB must be a comma-separated list of positive MiB counts');
  return benchPusshIncremental(work, { layerSizes: sizes }, say);
}

async function main(): Promise<number> {
  cleanupOnSignals();
  if (!existsSync(MESHD_MAIN)) throw new Error(`${MESHD_MAIN} is missing: run \`npm run build\` (npm run bench does)`);
  say(`meshd: ${MESHD_MAIN}`);
  await ensurePackages({ containerd: 'containerd', ctr: 'containerd', skopeo: 'skopeo', 'docker-registry': 'docker-registry', curl: 'curl', gzip: 'gzip', tar: 'tar', time: 'time', ssh: 'openssh-client' });
  const work = await mkdtemp(join(tmpdir(), 'lm-bench-'));
  onCleanup(`work dir ${work}`, () => rm(work, { recursive: true, force: true }));
  // By whole names: "repush" must not skip "push".
  const skip = new Set((process.env.BENCH_SKIP ?? '').split(',').map((s) => s.trim()));

  const get = skip.has('get') ? undefined : await getPhase(work);
  const push = skip.has('push') ? undefined : await pushPhase(work);
  const mirror = skip.has('mirror') ? undefined : await mirrorPhase(work);
  const pussh = skip.has('pussh') ? undefined : await pusshPhase(work);
  const repush = skip.has('repush') ? undefined
    : await benchRepushRace({ rounds: envInt('BENCH_REPUSH_ROUNDS', 1000), lanes: envInt('BENCH_REPUSH_LANES', 4) }, say);

  const json: Record<string, unknown> = { bench: 'layermesh-registry', node: process.version };
  say('');
  let missed = false;
  if (get) {
    const byName = (n: string) => get.results.find((r) => r.name === n)!;
    const ref = byName(GO_REGISTRY).medianMBps;
    say(`Blob GET, ${get.blobBytes / MiB} MiB blob, curl -o /dev/null, median of ${get.results[0].rounds.length} rounds (MB = 10^6 bytes)`);
    say(table([
      ['registry', 'median MB/s', 'min', 'max', 'server CPU s/GB', '× docker-registry'],
      ...get.results.map((r) => [r.name, fixed(r.medianMBps, 0), fixed(Math.min(...r.rounds), 0), fixed(Math.max(...r.rounds), 0), fixed(r.cpuSecondsPerGB, 2), fixed(r.medianMBps / ref, 2)]),
    ]));
    const ratio = byName(MESHD_CTD).medianMBps / ref;
    missed = ratio < GET_TARGET;
    say(`GET ratio meshd(containerd)/docker-registry = ${fixed(ratio, 2)} (target ≥ ${GET_TARGET}): ${missed ? 'TARGET MISSED' : 'target met'}`);
    say('');
    json.get = {
      blobBytes: get.blobBytes,
      MBps: Object.fromEntries(get.results.map((r) => [r.name, Number(r.medianMBps.toFixed(1))])),
      roundsMBps: Object.fromEntries(get.results.map((r) => [r.name, r.rounds.map((x) => Number(x.toFixed(1)))])),
      cpuSecondsPerGB: Object.fromEntries(get.results.map((r) => [r.name, Number(r.cpuSecondsPerGB.toFixed(3))])),
      ratio: Number(ratio.toFixed(3)),
      fsRatio: Number((byName(MESHD_FS).medianMBps / ref).toFixed(3)),
      target: GET_TARGET,
      met: !missed,
    };
  }
  if (push) {
    const seconds = (name: string) => push.results.find((r) => r.name === name)!.medianSeconds;
    const ref = seconds(GO_REGISTRY);
    say(`Push, skopeo copy of a ${push.layers}-layer image (${fixed(push.imageBytes / MiB, 0)} MiB), fresh registry per round, median of ${push.results[0].rounds.length} rounds (lower is better)`);
    say(table([
      ['registry', 'median seconds', 'min', 'max', 'server CPU s', 'time × docker-registry'],
      ...push.results.map((r) => [r.name, fixed(r.medianSeconds, 2), fixed(Math.min(...r.rounds), 2), fixed(Math.max(...r.rounds), 2), fixed(r.cpuSeconds, 2), fixed(r.medianSeconds / ref, 2)]),
    ]));
    const ratio = seconds(MESHD_CTD) / ref;
    for (const [name, target] of Object.entries(PUSH_TARGETS)) {
      const r = seconds(name) / ref;
      say(`Push time ratio ${name}/docker-registry = ${fixed(r, 2)} (target ≤ ${fixed(target, 2)}): ${r <= target ? 'target met' : 'TARGET MISSED'}`);
    }
    const floor = seconds(CTR_INGEST);
    say(`containerd alone (its own client writing the same blobs, no HTTP) takes ${fixed(floor / ref, 2)}× docker-registry's push; meshd(containerd) takes ${fixed(seconds(MESHD_CTD) / floor, 2)}× containerd alone`);
    say('');
    json.push = {
      imageBytes: push.imageBytes,
      layers: push.layers,
      seconds: Object.fromEntries(push.results.map((r) => [r.name, Number(r.medianSeconds.toFixed(3))])),
      roundsSeconds: Object.fromEntries(push.results.map((r) => [r.name, r.rounds.map((x) => Number(x.toFixed(3)))])),
      serverCpuSeconds: Object.fromEntries(push.results.map((r) => [r.name, Number(r.cpuSeconds.toFixed(2))])),
      timeRatio: Number(ratio.toFixed(3)),
      containerdFloorRatio: Number((floor / ref).toFixed(3)),
    };
  }
  if (mirror) {
    const rounds = mirror.variants[0]?.mirror.length ?? 0;
    say(`Pull through the mirror, ${mirror.layers}-layer image (${fixed(mirror.imageBytes / MiB, 0)} MiB): containerd ← meshd B ← peer meshd A, against containerd ← docker-registry; fresh client namespace and fresh meshd B per round, median of ${rounds} rounds`);
    const label = { mirror: 'mirror over TLS (B ← A)', plaintext: 'mirror, --peer-plaintext (B ← A)', direct: 'direct (docker-registry)' };
    const row = (v: (typeof mirror.variants)[number], path: 'mirror' | 'plaintext' | 'direct') => {
      const rs = v[path];
      const secs = rs.map((r) => r.seconds);
      const med = median(secs);
      return [
        `${VARIANT_LABEL[v.variant]}: ${label[path]}`,
        fixed(med, 2), fixed(Math.min(...secs), 2), fixed(Math.max(...secs), 2), fixed(mirror.imageBytes / med / MB, 0),
        fixed(median(rs.map((r) => r.serverCpu)), 2), fixed(median(rs.map((r) => r.containerdCpu)), 2), fixed(median(rs.map((r) => r.clientCpu)), 2),
        path !== 'direct' ? fixed(median(rs.map((r) => r.lastBlobInSeconds ?? NaN)), 2) : '',
      ];
    };
    say(table([
      ['path', 'median s', 'min', 'max', 'MB/s', 'server CPU s', 'containerd CPU s', 'ctr CPU s', 'B has all blobs at s'],
      ...mirror.variants.flatMap((v) => [row(v, 'mirror'), row(v, 'plaintext'), row(v, 'direct')]),
    ]));
    for (const v of mirror.variants) {
      const cpu = (rs: typeof v.mirror) => fixed(median(rs.map((r) => r.serverCpu)), 2);
      say(`  ${VARIANT_LABEL[v.variant]}: mirror throughput = ${fixed(v.ratio, 2)}× direct; over TLS = ${fixed(v.tlsRatio, 2)}× plaintext `
        + `(target ≥ ${TLS_TARGET}: ${v.tlsRatio >= TLS_TARGET ? 'met' : 'MISSED'}), meshd A+B CPU ${cpu(v.mirror)} s TLS vs ${cpu(v.plaintext)} s plaintext`);
    }
    say(`  raw GET of the largest layer (curl): A's peer data plane ${fixed(mirror.peerPlaneMBps, 0)} MB/s over TLS, ${fixed(mirror.plaintextPeerPlaneMBps, 0)} MB/s plaintext; docker-registry ${fixed(mirror.registryMBps, 0)} MB/s`);
    for (const v of mirror.variants) {
      const cpuRatio = median(v.mirror.map((r) => r.serverCpu)) / median(v.direct.map((r) => r.serverCpu));
      say(`Mirror ratio (${VARIANT_LABEL[v.variant]}) direct time / mirror time = ${fixed(v.ratio, 2)} (target ≥ ${MIRROR_TARGETS[v.variant]}): ${v.ratio >= MIRROR_TARGETS[v.variant] ? 'target met' : 'TARGET MISSED'}; `
        + `meshd A+B CPU × docker-registry's = ${fixed(cpuRatio, 1)} (target ≤ ${MIRROR_CPU_TARGET}): ${cpuRatio <= MIRROR_CPU_TARGET ? 'target met' : 'TARGET MISSED'}`);
    }
    say('');
    const r3 = (x: number) => Number(x.toFixed(3));
    json.mirror = {
      imageBytes: mirror.imageBytes,
      layers: mirror.layers,
      targets: MIRROR_TARGETS,
      peerPlaneMBps: Number(mirror.peerPlaneMBps.toFixed(1)),
      plaintextPeerPlaneMBps: Number(mirror.plaintextPeerPlaneMBps.toFixed(1)),
      registryMBps: Number(mirror.registryMBps.toFixed(1)),
      variants: Object.fromEntries(mirror.variants.map((v) => [v.variant, {
        ratio: r3(v.ratio),
        met: v.ratio >= MIRROR_TARGETS[v.variant],
        tlsRatio: r3(v.tlsRatio),
        seconds: { mirror: r3(v.mirrorMedianSeconds), plaintext: r3(v.plaintextMedianSeconds), direct: r3(v.directMedianSeconds) },
        roundsSeconds: { mirror: v.mirror.map((r) => r3(r.seconds)), plaintext: v.plaintext.map((r) => r3(r.seconds)), direct: v.direct.map((r) => r3(r.seconds)) },
        serverCpuSeconds: { mirror: r3(median(v.mirror.map((r) => r.serverCpu))), plaintext: r3(median(v.plaintext.map((r) => r.serverCpu))), direct: r3(median(v.direct.map((r) => r.serverCpu))) },
        containerdCpuSeconds: { mirror: r3(median(v.mirror.map((r) => r.containerdCpu))), plaintext: r3(median(v.plaintext.map((r) => r.containerdCpu))), direct: r3(median(v.direct.map((r) => r.containerdCpu))) },
        lastBlobInSeconds: v.mirror.map((r) => r3(r.lastBlobInSeconds ?? NaN)),
      }])),
    };
  }
  if (pussh) {
    const mib = (b: number) => fixed(b / MiB, 2);
    say(`pussh after a one-layer change: ${pussh.layers}-layer image (${fixed(pussh.imageBytes / MiB, 0)} MiB), top layer (${fixed(pussh.changedLayerBytes / MiB, 0)} MiB) replaced; bytes counted on the ssh connection (both directions, encrypted)`);
    say(table([
      ['', 'MiB on the wire', 'seconds'],
      ['pussh, first push (everything)', mib(pussh.firstPushWireBytes), ''],
      ['pussh, after the change', mib(pussh.pusshWireBytes), fixed(pussh.pusshSeconds, 2)],
      [`docker save | ssh (archive ${mib(pussh.archiveBytes)} MiB)`, mib(pussh.saveWireBytes), fixed(pussh.saveSeconds, 2)],
    ]));
    say(`  pussh reported ${mib(pussh.pusshReportedBytes)} MiB sent; the remote meshd committed ${mib(pussh.remoteReceivedBytes)} MiB of blobs`);
    say(`pussh wire bytes / docker save | ssh wire bytes = ${fixed(pussh.ratio, 3)}`);
    say('');
    json.pussh = {
      imageBytes: pussh.imageBytes,
      layers: pussh.layers,
      changedLayerBytes: pussh.changedLayerBytes,
      wireBytes: { firstPush: pussh.firstPushWireBytes, pussh: pussh.pusshWireBytes, dockerSaveSsh: pussh.saveWireBytes },
      archiveBytes: pussh.archiveBytes,
      pusshReportedBytes: pussh.pusshReportedBytes,
      remoteReceivedBytes: pussh.remoteReceivedBytes,
      seconds: { pussh: Number(pussh.pusshSeconds.toFixed(3)), dockerSaveSsh: Number(pussh.saveSeconds.toFixed(3)) },
      ratio: Number(pussh.ratio.toFixed(4)),
    };
  }
  if (repush) {
    say(`Re-push after a manifest delete, meshd on containerd: ${repush.rounds} rounds in ${repush.lanes} repositories`);
    say(`  failed rounds: ${repush.failures} (re-push refused: ${repush.repushFailures}), must be 0; ${fixed(repush.seconds, 1)} s, ${fixed(repush.seconds / repush.rounds * 1000, 0)} ms per round, meshd + containerd CPU ${fixed(repush.serverCpuSeconds, 1)} s`);
    for (const e of repush.examples) say(`  ${e}`);
    say('');
    const { examples: _, ...figures } = repush;
    json.repush = { ...figures, seconds: Number(repush.seconds.toFixed(2)), serverCpuSeconds: Number(repush.serverCpuSeconds.toFixed(2)) };
  }
  console.log(JSON.stringify(json));
  return repush && repush.failures > 0 ? 1 : 0;
}

await runBench(main);
