// The human output of `meshctl mirror configure` and `restore` (--json prints the reports as they are).
import { join } from 'node:path';
import type { ConfigureReport } from './configure.js';
import type { ContainerdCheck } from './containerd-config.js';
import type { DockerdAdvice } from './dockerd.js';
import { BACKUP_SUFFIX, DEFAULT_REGISTRY, HOSTS_FILE } from './hosts-toml.js';
import type { RestoreReport } from './restore.js';

const indent = (s: string) => s.split('\n').map((l) => `    ${l}`).join('\n');

export function formatConfigureReport(r: ConfigureReport): string {
  const out: string[] = [];
  for (const f of r.files) {
    const what = f.registry === DEFAULT_REGISTRY ? 'every registry without its own directory' : f.registry;
    const verb = { created: 'wrote', replaced: 'wrote', updated: 'updated', unchanged: 'unchanged' }[f.action];
    out.push(`${verb} ${f.path}: ${what} -> meshd ${r.mirrorUrl}, then ${f.fallback}`);
    if (f.action === 'replaced') out.push(`  the file that was there is saved as ${f.backup}`);
  }
  for (const n of r.notes) out.push(`note: ${n}`);
  const { action, reason } = r.containerdEdit;
  const notEdited = action === 'none' && reason !== undefined && reason !== 'already set' ? [`  ${r.containerd.config} not edited: ${reason}`] : [];
  out.push('', 'containerd (CRI, Kubernetes):', ...notEdited, ...(action === 'none'
    ? containerdLines(r.containerd, r.dir, !!r.restart)
    : editLines(r)));
  if (r.restart) out.push(`  ${r.restart.restarted ? 'restarted containerd:' : 'containerd not restarted:'} ${r.restart.detail}`);
  out.push('', 'ctr (reads no config_path: give it the directory):', `  ${r.ctr}`);
  out.push('', ...dockerdLines(r.dockerd, r.mirrorUrl));
  return out.join('\n');
}

function editLines(r: ConfigureReport): string[] {
  const c = r.containerd;
  const out = r.containerdEdit.action === 'created'
    ? [`  created ${c.config} with config_path = ${JSON.stringify(r.dir)} under [${c.table}] (there was none)`]
    : [`  added config_path = ${JSON.stringify(r.dir)} under [${c.table}] in ${c.config}; the original is saved as ${r.containerdEdit.backup}`];
  if (!r.restart) out.push('  containerd reads it when it starts: restart it (systemctl restart containerd, or meshctl mirror configure --restart)');
  return out;
}

function containerdLines(c: ContainerdCheck, dir: string, restarting: boolean): string[] {
  const out: string[] = [];
  if (c.criDisabled) {
    out.push(`  the CRI plugin is disabled in ${c.config}, so config_path has no effect there; ctr and other clients take the directory themselves`);
  } else switch (c.state) {
    case 'set':
      out.push(`  ${c.config} sets config_path = ${JSON.stringify(c.configPath)}: nothing to change (containerd reads ${HOSTS_FILE} at every pull)`);
      break;
    case 'missing':
      out.push(`  ${c.config} does not exist, so containerd has no config_path; create it with:`);
      break;
    case 'unset':
      out.push(`  ${c.config} does not set config_path; add:`);
      break;
    case 'other':
      out.push(`  ${c.config} sets config_path = ${JSON.stringify(c.configPath)}, without ${dir}; change it to the value below`,
        '  (registries with a directory, or a _default, in the directories already listed keep theirs and skip meshd):');
      break;
    case 'unreadable':
    case 'invalid':
      out.push(`  could not check ${c.config}: ${c.error}`, `  it needs, under [${c.table}]:`, indent(`config_path = ${JSON.stringify(dir)}`));
      break;
  }
  if (c.snippet) {
    out.push(indent(c.snippet), restarting ? '  then restart containerd.' : '  then restart containerd (systemctl restart containerd).');
  }
  for (const k of c.conflicts) out.push(`  containerd refuses config_path while ${k} is set: move it into ${HOSTS_FILE} files and remove it`);
  if (c.imports.length > 0) out.push(`  (files merged through imports are not checked: ${c.imports.join(', ')})`);
  return out;
}

function dockerdLines(d: DockerdAdvice, mirrorUrl: string): string[] {
  return [
    'dockerd without the containerd image store: add to /etc/docker/daemon.json',
    `  {"registry-mirrors": [${d.daemonJson['registry-mirrors'].map((u) => JSON.stringify(u)).join(', ')}]}`,
    '  then reload dockerd (systemctl reload docker).',
    `  Limit: ${d.limits}.`,
    d.insecureRegistriesNeeded
      ? `  ${new URL(mirrorUrl).host} is plain HTTP off loopback: add it to "insecure-registries" too.`
      : '  No "insecure-registries" entry is needed: Docker trusts loopback addresses.',
    `dockerd with the containerd image store (Engine 28 or later) reads ${HOSTS_FILE} files from ${d.certsDir} instead:`,
    `  meshctl mirror configure --dir ${d.certsDir} --no-containerd-config`,
  ];
}

export function formatRestoreReport(r: RestoreReport): string {
  const out = r.files.length === 0 ? [`nothing to restore in ${r.dir}`] : r.files.map((f) => {
    switch (f.action) {
      case 'restored': return `restored ${f.path} ${f.detail}`;
      case 'removed': return `removed ${f.path}${f.dirRemoved ? ` and the empty ${join(r.dir, f.registry)}` : ''}`;
      case 'backup-removed': return `removed ${f.path}${BACKUP_SUFFIX}: ${f.detail}`;
      case 'left': return `left ${f.path}: ${f.detail}`;
    }
  });
  const c = r.containerd;
  if (c) out.push(c.action === 'left' ? `left ${c.config}: ${c.detail}` : `${c.action} ${c.config}${c.detail ? ` ${c.detail}` : ''}`);
  if (r.restart) out.push(`${r.restart.restarted ? 'restarted containerd:' : 'containerd not restarted:'} ${r.restart.detail}`);
  else if (c && c.action !== 'left') out.push('containerd reads it when it starts: restart it (systemctl restart containerd, or --restart)');
  return out.join('\n');
}
