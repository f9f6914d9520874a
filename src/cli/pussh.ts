#!/usr/bin/env node
// pussh: push a local image to hosts over SSH, into the meshd already running there.
// Also the Docker CLI plugin `docker pussh` (symlink this file to ~/.docker/cli-plugins/docker-pussh).
import { basename } from 'node:path';
import { packageVersion, runPussh } from './pussh/command.js';

const args = process.argv.slice(2);

if (args[0] === 'docker-cli-plugin-metadata') {
  // The Docker CLI asks every plugin this before listing or running it.
  process.stdout.write(`${JSON.stringify({
    SchemaVersion: '0.1.0',
    Vendor: 'LayerMesh',
    Version: packageVersion(),
    ShortDescription: 'Push an image to hosts over SSH, sending only the layers they lack',
  })}\n`);
} else {
  // Docker runs a plugin as `docker-pussh pussh ARGS...`.
  const asDockerPlugin = args[0] === 'pussh'
    && (process.env.DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND !== undefined || basename(process.argv[1] ?? '').startsWith('docker-'));
  process.exitCode = await runPussh(asDockerPlugin ? args.slice(1) : args, { asDockerPlugin });
}
