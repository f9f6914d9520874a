// Copies files the build does not emit (containerd's .proto files, the status page) next to the compiled code.
import { copyFile, mkdir, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

for (const [dir, suffixes] of [['store/containerd/proto', ['.proto']], ['node/ui', ['.html', '.js']]]) {
  const from = fileURLToPath(new URL(`../src/${dir}/`, import.meta.url));
  const to = fileURLToPath(new URL(`../dist/src/${dir}/`, import.meta.url));
  await mkdir(to, { recursive: true });
  const files = (await readdir(from)).filter((f) => suffixes.some((s) => f.endsWith(s)));
  for (const file of files) await copyFile(from + file, to + file);
  console.log(`copied ${files.length} files to dist/src/${dir}`);
}
