// Copies files the build does not emit (containerd's .proto files) next to the compiled code.
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const from = fileURLToPath(new URL('../src/store/containerd/proto/', import.meta.url));
const to = fileURLToPath(new URL('../dist/src/store/containerd/proto/', import.meta.url));

await mkdir(to, { recursive: true });
const protos = (await readdir(from)).filter((f) => f.endsWith('.proto'));
for (const file of protos) await copyFile(from + file, to + file);
console.log(`copied ${protos.length} .proto files to ${to}`);
