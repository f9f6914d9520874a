#!/usr/bin/env node
// pussh: push a local image to hosts over SSH, into the meshd already running there.
// Also the Docker CLI plugin `docker pussh` (symlink this file to ~/.docker/cli-plugins/docker-pussh).
import { basename } from 'node:path';
import { packageVersion, runPussh } from './pussh/command.js';
import { splitPluginArgs } from './pussh/docker-globals.js';
import { failureOf, EXIT_CODES } from './pussh/errors.js';

const args = process.argv.slice(2);
const asDockerPlugin = process.env.DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND !== undefined || basename(process.argv[1] ?? '').startsWith('docker-');

if (args[0] === 'docker-cli-plugin-metadata') {
  // The Docker CLI asks every plugin this before listing or running it.
  process.stdout.write(`${JSON.stringify({
    SchemaVersion: '0.1.0',
    Vendor: 'LayerMesh',
    Version: packageVersion(),
    ShortDescription: 'Push an image to hosts over SSH, sending only the layers they lack',
  })}\n`);
} else {
  // Docker runs a plugin as `docker-pussh [DOCKER GLOBAL OPTIONS] pussh ARGS...`.
  let plugin;
  try {
    plugin = asDockerPlugin ? splitPluginArgs(args, 'pussh') : undefined;
  } catch (err) {
    process.stderr.write(`docker pussh: ${failureOf(err).message}\n`);
    process.exit(EXIT_CODES.usage);
  }
  process.exitCode = plugin
    ? await runPussh(plugin.args, { asDockerPlugin: true, dockerGlobals: plugin.globals })
    : await runPussh(args);
}
