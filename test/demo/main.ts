#!/usr/bin/env node
// `npm run demo`: a first look at LayerMesh. Three hosts come up, an image is pushed to h1 only, and the
// reader watches its layers arrive on h2 and h3 through the mesh, asks who holds a layer, sees every copy
// verified, and everything is taken down again. Ends with `demo: OK — …` (exit 0) or `demo: FAILED — …`.
import '../../src/polyfill.js';
import { rmSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import type { ImageEntry, WhoHasAnswer } from '../../src/api/admin-types.js';
import { buildImage, type BuiltImage } from '../helpers/oci-image.js';
import { waitFor } from '../helpers/wait.js';
import { ArrivalView, hashHeld, look, MiB, mib, type Screen } from './arrival.js';
import { LoopbackDemo, NamespaceDemo, type DemoFleet } from './demo-fleet.js';

/** Four layers, 32 MiB of random (incompressible) data: big enough to watch, small enough for CI. */
const LAYER_MIB = [14, 10, 6, 2];
const REF = 'layermesh-demo:1';
/** How containerd and meshd name what is pushed as REF (Docker's naming rules). */
const IMAGE_NAME = `docker.io/library/${REF}`;
const ARRIVAL_TIMEOUT_MS = 120_000;

const program = new Command('demo')
  .description('Three LayerMesh hosts: push an image to one, watch it arrive on the others, then tear down')
  .option('--loopback', 'plain meshd processes on loopback with the embedded store, also when root (default when not root)')
  .option('--mbit <n>', 'in namespaces mode, shape every host link to this many Mbit/s each way', (v) => {
    const n = Number(v);
    if (!(Number.isFinite(n) && n > 0)) throw new InvalidArgumentError('a number > 0');
    return n;
  }, 100)
  .parse();
const opts = program.opts<{ loopback?: boolean; mbit: number }>();

// Once interrupted, the story's output stops: only the teardown speaks.
let interrupted: NodeJS.Signals | undefined;
const out: Screen = {
  get isTTY() { return process.stdout.isTTY; },
  get columns() { return process.stdout.columns; },
  write: (text: string) => interrupted || process.stdout.write(text),
};
const say = (line = '') => out.write(`${line}\n`);
const shout = (line: string) => process.stdout.write(`${line}\n`);
const since = (t: number) => (performance.now() - t) / 1000;
const indent = (text: string) => text.trimEnd().split('\n').map((l) => `      ${l}`).join('\n');
let step = 0;
const STEPS = 6;
const heading = (text: string) => say(`[${++step}/${STEPS}] ${text}`);

interface Result {
  mib: string;
  seconds: number;
}

async function story(demo: DemoFleet, keep: (image: BuiltImage) => void): Promise<Result> {
  let t = performance.now();
  heading(demo.kind === 'namespaces'
    ? 'starting 3 hosts in network namespaces (as root: each with its own containerd and meshd)…'
    : `starting 3 meshd processes on loopback${process.getuid?.() === 0 ? ' (--loopback)' : ' (not root: no namespaces)'}…`);
  await demo.start();
  for (const line of demo.describe()) say(`      ${line}`);
  say(`      up, and every meshd sees the two others, in ${since(t).toFixed(1)} s`);
  const [h1, , h3] = demo.hosts;

  t = performance.now();
  heading(`building a ${LAYER_MIB.length}-layer image offline (${LAYER_MIB.join(' + ')} MiB of random data)…`);
  const image = buildImage({ layerSizes: LAYER_MIB.map((n) => n * MiB), tag: '1' });
  keep(image);
  const payload = image.blobs.filter((b) => b.digest !== image.digest);
  const total = payload.reduce((n, b) => n + b.size, 0);
  say(`      ${image.dir}: manifest ${image.digest.slice(0, 19)}…, config and ${image.layers.length} layers, ${mib(total)} MiB, in ${since(t).toFixed(1)} s`);

  t = performance.now();
  heading(`pushing it to h1 only, as ${REF}…`);
  const command = await demo.push(image, REF);
  const pushed = performance.now();
  say(`      $ ${command}`);
  say(`      pushed in ${since(t).toFixed(1)} s; h1 gossips the push, and h2 and h3 (replication policy \`all\`, the default) copy it through the mesh`);

  heading('watching the layers arrive (each host\'s store, and `meshctl --json ls --mesh` on h1 for copies in progress)');
  const view = new ArrivalView(out, total, image.layers.length, h1.name);
  await waitFor('h2 and h3 to hold the whole image', async () => {
    const now = await look(demo.hosts, h1, image, IMAGE_NAME);
    view.show(now, since(pushed));
    const lacking = now.filter((v) => !v.complete);
    if (lacking.length) throw new Error(lacking.map((v) => `${v.name} holds ${v.layersHeld}/${image.layers.length} layers, ${mib(v.bytes)}/${mib(total)} MiB`).join('; '));
    return now;
  }, { timeoutMs: ARRIVAL_TIMEOUT_MS, intervalMs: view.intervalMs });
  const arrived = since(pushed);
  if (!view.tty) say(`      every host holds the whole image ${arrived.toFixed(1)} s after the push`);

  heading('asking the mesh');
  const ls = await h1.meshctl(['ls', '--mesh']);
  say(`      on h1: $ meshctl ls --mesh`);
  say(indent(ls.stdout));
  // who-has reads the DHT: h2 and h3 announce what they copied as soon as it is in their store; wait for that.
  const layer = image.layers[0];
  t = performance.now();
  const names = await waitFor(`h3's who-has ${layer.digest} to name h1, h2 and h3`, async () => {
    const res = await h3.admin<WhoHasAnswer>(`/_mesh/v1/who-has?key=${layer.digest}`);
    const found = res.providers.map((p) => p.name ?? '?');
    if (!demo.hosts.every((h) => found.includes(h.name))) throw new Error(`it names ${found.join(', ') || 'nobody'}`);
    return found;
  }, { timeoutMs: 60_000, intervalMs: 250 });
  const whoHas = await h3.meshctl(['who-has', layer.digest]);
  if (whoHas.code !== 0) throw new Error(`meshctl who-has on h3 exited with ${whoHas.code}: ${whoHas.stderr.trim()}`);
  say(`      on h3: $ meshctl who-has ${layer.digest}   (the ${mib(layer.size)} MiB layer)`);
  say(indent(whoHas.stdout));
  say(`      → it names ${names.join(', ')}: all three hold the layer and announce it${since(t) < 0.3 ? '' : ` (after ${since(t).toFixed(1)} s)`}`);

  heading('verifying every copy');
  for (const h of demo.hosts) {
    const images = await h.admin<ImageEntry[]>('/_mesh/v1/images');
    const record = images.find((i) => i.name === IMAGE_NAME);
    if (record?.digest !== image.digest) throw new Error(`${h.name}'s image ${IMAGE_NAME} is ${record?.digest ?? 'missing'}, not ${image.digest}`);
    for (const b of image.blobs) {
      const got = await hashHeld(h, b.digest).catch((err: Error) => `unreadable (${err.message})`);
      if (got !== b.digest) throw new Error(`${h.name} holds ${b.digest} with the digest ${got}`);
    }
  }
  say(`      every blob re-hashed on ${demo.hosts.map((h) => h.name).join(', ')}: ${image.blobs.length} blobs (manifest, config, ${image.layers.length} layers), identical digests;`);
  say(`      each host's ${IMAGE_NAME} is ${image.digest}`);
  return { mib: mib(total), seconds: arrived };
}

async function main(): Promise<number> {
  const started = performance.now();
  const root = process.getuid?.() === 0;
  const demo: DemoFleet = root && !opts.loopback ? new NamespaceDemo(opts.mbit) : new LoopbackDemo();
  let image: BuiltImage | undefined;
  let teardown: Promise<void> | undefined;
  const tearDown = () => (teardown ??= demo.down().finally(() => {
    if (image) rmSync(image.dir, { recursive: true, force: true });
  }));

  // Ctrl-C or SIGTERM: take everything down, then leave; the story's own errors no longer matter.
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupted) return;
    interrupted = sig;
    shout(`\n${sig}: tearing down…`);
    tearDown().then(
      () => shout(`demo: FAILED — interrupted by ${sig}; everything it started is gone`),
      (err: Error) => shout(`demo: FAILED — interrupted by ${sig}, and tearing down failed: ${err.message}`),
    ).finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const parked = new Promise<number>(() => {}); // the signal handler exits

  say('LayerMesh demo: three hosts, one push to h1, the mesh does the rest.');
  let result: Result | undefined;
  let failure: string | undefined;
  try {
    result = await story(demo, (img) => (image = img));
  } catch (err) {
    if (interrupted) return parked;
    failure = (err as Error).message;
    // What the daemons said last, before teardown removes their logs.
    for (const h of demo.hosts) process.stderr.write(`--- ${h.name}: last lines of meshd's log ---\n${await h.logTail(8)}\n`);
  }

  const t = performance.now();
  say('tearing down…');
  try {
    await tearDown();
    if (interrupted) return parked;
    say(`      done in ${since(t).toFixed(1)} s: every process stopped, every ${demo.kind === 'namespaces' ? 'namespace, link and file' : 'file'} removed`);
  } catch (err) {
    if (interrupted) return parked;
    failure = failure ? `${failure}; and tearing down failed: ${(err as Error).message}` : `tearing down failed: ${(err as Error).message}`;
  }
  if (failure || !result) {
    say(`demo: FAILED — ${failure ?? 'no result'}`);
    return 1;
  }
  say(`demo: OK — the image pushed to h1 is on h2 and h3 (${result.mib} MiB in ${result.seconds.toFixed(1)} s), who-has names all three (${since(started).toFixed(0)} s in all)`);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    shout(`demo: FAILED — ${err.message}`);
    process.exit(1);
  },
);
