// What the configuration names outside itself: the registry token, the swarm key, the upstream credentials. Read
// before anything starts listening; a file that is missing, too open or malformed is the configuration's fault, so
// it fails as a ConfigError (which systemd does not restart into again and again).
import { blockListOf, isLoopback } from '../registry/access.js';
import type { Credentials } from '../mirror/upstream-auth.js';
import { readDockerConfig } from '../mirror/upstream-auth.js';
import { readSwarmKey } from '../dht/swarm-key.js';
import { readSecretFile } from '../util/secret-file.js';
import { asConfigError, type Config } from './config.js';
import { splitHostPort } from './config-values.js';

export interface ConfiguredFiles {
  token?: string;
  swarmKey?: Uint8Array;
  upstreamCredentials?: Map<string, Credentials>;
}

export async function readConfiguredFiles(config: Config): Promise<ConfiguredFiles> {
  try {
    return {
      token: await registryToken(config),
      swarmKey: config.swarmKeyFile ? await readSwarmKey(config.swarmKeyFile) : undefined,
      upstreamCredentials: config.upstream && config.upstreamAuthFile ? await readDockerConfig(config.upstreamAuthFile) : undefined,
    };
  } catch (err) {
    throw asConfigError(err);
  }
}

/** The registry token, from the flag or its file; and a registry off loopback must not be open to all. */
async function registryToken(config: Config): Promise<string | undefined> {
  if (config.registryToken && config.registryTokenFile) throw new Error('give --registry-token or --registry-token-file, not both');
  const token = config.registryTokenFile
    ? (await readSecretFile(config.registryTokenFile, 'registry token file')).toString('utf8').trim()
    : config.registryToken;
  if (config.registryTokenFile && !token) throw new Error(`registry token file ${config.registryTokenFile} is empty`);
  blockListOf(config.registryAllow); // a mistyped network stops the daemon here, not at the first request
  const { host } = splitHostPort(config.registryAddr);
  if (!isLoopback(host) && !token && config.registryAllow.length === 0) {
    throw new Error(`--registry-addr ${config.registryAddr} is not loopback: set --registry-token-file (or --registry-allow for networks that may pull) so that the registry is not open to every host`);
  }
  return token;
}
