// `meshctl mirror configure|restore`: the command line of this folder. Failures are thrown as they come
// (MirrorConfigError, see errors.ts): meshctl prints the message and exits with status 2.
import { Option, type Command } from 'commander';
import { configureMirror } from './configure.js';
import { DEFAULT_CONTAINERD_CONFIG } from './containerd-config.js';
import { formatConfigureReport, formatRestoreReport } from './format.js';
import { DEFAULT_CERTS_DIR } from './hosts-toml.js';
import { restartWithSystemd } from './restart.js';
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
    .option('--mirror-url <url>', 'the local meshd (default: meshctl --node)')
    .option('--containerd-config <file>', "containerd's configuration: config_path is added when it has none (backed up first)", DEFAULT_CONTAINERD_CONFIG)
    .option('--no-containerd-config', "leave containerd's configuration alone; only say what it needs")
    .option('--restart', 'restart containerd when its configuration changed (systemctl restart containerd)')
    .action(async (cmd: { dir: string; registry?: string[]; all?: boolean; mirrorUrl?: string; containerdConfig: string | false; restart?: boolean }) => {
      const report = await configureMirror({
        dir: cmd.dir, registries: cmd.registry, all: cmd.all,
        // The mirror is the node meshctl talks to, unless told otherwise.
        mirrorUrl: cmd.mirrorUrl ?? program.opts<{ node: string }>().node,
        ...(cmd.containerdConfig === false ? { noContainerdConfig: true } : { containerdConfig: cmd.containerdConfig }),
        restart: cmd.restart ? restartWithSystemd : undefined,
      });
      print(report, () => formatConfigureReport(report));
    });

  mirror
    .command('restore')
    .description("put back the hosts.toml files configure replaced, remove the ones it added, and put back containerd's config.toml")
    .option('--dir <dir>', "containerd's certs.d directory", DEFAULT_CERTS_DIR)
    .option('--containerd-config <file>', "containerd's configuration", DEFAULT_CONTAINERD_CONFIG)
    .option('--restart', 'restart containerd when its configuration changed back (systemctl restart containerd)')
    .action(async (cmd: { dir: string; containerdConfig: string; restart?: boolean }) => {
      const report = await restoreMirror({ dir: cmd.dir, containerdConfig: cmd.containerdConfig, restart: cmd.restart ? restartWithSystemd : undefined });
      print(report, () => formatRestoreReport(report));
    });
  return mirror;
}
