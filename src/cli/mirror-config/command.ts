// `meshctl mirror configure|restore`: the command line of this folder. Failures are thrown as they come
// (MirrorConfigError, see errors.ts): meshctl prints the message and exits with status 2.
import { Option, type Command } from 'commander';
import { configureMirror } from './configure.js';
import { DEFAULT_CONTAINERD_CONFIG } from './containerd-config.js';
import { formatConfigureReport, formatRestoreReport } from './format.js';
import { DEFAULT_CERTS_DIR, DEFAULT_MIRROR_URL } from './hosts-toml.js';
import { restoreMirror } from './restore.js';

/** How meshctl prints a result: the JSON as it is with --json, else the human text. */
export type Print = (json: unknown, human: () => string) => void;

export function addMirrorCommand(program: Command, print: Print): Command {
  const mirror = program
    .command('mirror')
    .description('point containerd and dockerd at the local meshd');

  mirror
    .command('configure')
    .description("write containerd's certs.d/<registry>/hosts.toml (meshd first, the upstream as fallback; what was there is backed up) and print what containerd, ctr and dockerd need")
    .option('--dir <dir>', "containerd's certs.d directory", DEFAULT_CERTS_DIR)
    .addOption(new Option('--registry <host...>', 'registries to send through meshd (default: _default, every registry without a directory of its own)').conflicts('all'))
    .option('--all', '_default and every registry that already has a directory in --dir')
    .option('--mirror-url <url>', 'the local meshd', DEFAULT_MIRROR_URL)
    .option('--containerd-config <file>', "containerd's configuration, checked for config_path", DEFAULT_CONTAINERD_CONFIG)
    .action(async (cmd: { dir: string; registry?: string[]; all?: boolean; mirrorUrl: string; containerdConfig: string }) => {
      const report = await configureMirror({
        dir: cmd.dir, registries: cmd.registry, all: cmd.all, mirrorUrl: cmd.mirrorUrl, containerdConfig: cmd.containerdConfig,
      });
      print(report, () => formatConfigureReport(report));
    });

  mirror
    .command('restore')
    .description('put back the hosts.toml files configure replaced, and remove the ones it added')
    .option('--dir <dir>', "containerd's certs.d directory", DEFAULT_CERTS_DIR)
    .action(async (cmd: { dir: string }) => {
      const report = await restoreMirror({ dir: cmd.dir });
      print(report, () => formatRestoreReport(report));
    });
  return mirror;
}
