// Copies files the build does not emit (containerd's .proto files, the status page) next to the compiled code,
// and makes the package's commands executable (tsc writes 0644; `docker pussh` runs the file itself).
import { chmod, copyFile, mkdir, readdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

for (const [dir, suffixes] of [['store/containerd/proto', ['.proto']], ['node/ui', ['.html', '.js']]]) {
  const from = fileURLToPath(new URL(`../src/${dir}/`, import.meta.url));
  const to = fileURLToPath(new URL(`../dist/src/${dir}/`, import.meta.url));
  await mkdir(to, { recursive: true });
  const files = (await readdir(from)).filter((f) => suffixes.some((s) => f.endsWith(s)));
  for (const file of files) await copyFile(from + file, to + file);
  console.log(`copied ${files.length} files to dist/src/${dir}`);
}

for (const bin of ['src/node/main.js', 'src/cli/meshctl.js', 'src/cli/pussh.js']) {
  await chmod(fileURLToPath(new URL(`../dist/${bin}`, import.meta.url)), 0o755);
}
console.log('made the commands in dist executable');
