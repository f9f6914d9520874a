// curl as the neutral reference client: GET a URL into /dev/null and report what curl measured.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const exec = promisify(execFile);

export interface Download {
  status: number;
  bytes: number;
  seconds: number;
  /** bytes per second as curl computed it (size_download / time_total). */
  bytesPerSecond: number;
}

export async function curlGet(url: string, headers: Record<string, string> = {}): Promise<Download> {
  const h = Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}: ${v}`]);
  // A meshd data plane's certificate is self-signed for its peer id: meshd checks that, curl need not.
  const insecure = url.startsWith('https:') ? ['-k'] : [];
  const { stdout } = await exec('curl', ['-sS', ...insecure, '-o', '/dev/null', '-w', '%{http_code} %{size_download} %{time_total} %{speed_download}', ...h, url], {
    timeout: 300_000,
  });
  const [status, bytes, seconds, speed] = stdout.trim().split(' ').map(Number);
  return { status, bytes, seconds, bytesPerSecond: speed };
}

/** sha256 of what the URL serves, hashed as it streams (curl | sha256sum). */
export async function curlDigest(url: string): Promise<string> {
  const { stdout } = await exec('bash', ['-o', 'pipefail', '-c', 'curl -sSf "$1" | sha256sum', 'bash', url], { timeout: 300_000 });
  return `sha256:${stdout.split(' ')[0]}`;
}
