// Docker runs a CLI plugin as `docker-pussh [GLOBAL OPTIONS] pussh ARGS...`: the options the user gave
// `docker` itself (-H, --context, --config, TLS, log level) come first, unresolved, and are ours to honour.
import { PusshError } from './errors.js';

export interface DockerGlobals {
  hosts: string[];
  context?: string;
  config?: string;
  tls?: boolean;
  tlsVerify?: boolean;
  tlsCaCert?: string;
  tlsCert?: string;
  tlsKey?: string;
}

type Setter = (g: DockerGlobals, value: string) => void;

/** Options that take a value, by every name Docker accepts for them. */
const VALUED: Record<string, Setter> = {
  '-H': (g, v) => g.hosts.push(v),
  '--host': (g, v) => g.hosts.push(v),
  '-c': (g, v) => (g.context = v),
  '--context': (g, v) => (g.context = v),
  '--config': (g, v) => (g.config = v),
  // Docker's log level is for its own logs; pussh's output is set with --quiet and --json.
  '-l': () => {},
  '--log-level': () => {},
  '--tlscacert': (g, v) => (g.tlsCaCert = v),
  '--tlscert': (g, v) => (g.tlsCert = v),
  '--tlskey': (g, v) => (g.tlsKey = v),
};

/** Boolean options; Docker also takes them as `--tls=false`. */
const FLAGS: Record<string, (g: DockerGlobals, on: boolean) => void> = {
  '--tls': (g, on) => (g.tls = on),
  '--tlsverify': (g, on) => (g.tlsVerify = on),
  '-D': () => {},
  '--debug': () => {},
};

function parseBool(name: string, value: string): boolean {
  if (/^(1|t|true)$/i.test(value)) return true;
  if (/^(0|f|false)$/i.test(value)) return false;
  throw new PusshError('usage', `docker ${name}=${value}: expected true or false`);
}

/**
 * Splits the plugin's argv into Docker's global options and the arguments after the `pussh` command word.
 * Returns undefined when argv does not hold the command word (not run as a Docker plugin).
 */
export function splitPluginArgs(argv: string[], command: string): { globals: DockerGlobals; args: string[] } | undefined {
  if (!argv.includes(command)) return undefined;
  const globals: DockerGlobals = { hosts: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === command) return { globals, args: argv.slice(i + 1) };
    if (!arg.startsWith('-')) return undefined;
    const eq = arg.indexOf('=');
    const name = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    const set = VALUED[name];
    if (set) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new PusshError('usage', `docker ${name} needs a value`);
      set(globals, value);
      continue;
    }
    const flag = FLAGS[name];
    if (flag) {
      flag(globals, inline === undefined ? true : parseBool(name, inline));
      continue;
    }
    throw new PusshError('usage', `docker ${arg}: a global option docker pussh does not know`);
  }
  return undefined;
}
