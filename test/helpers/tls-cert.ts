// A throwaway self-signed certificate for 127.0.0.1 (openssl), for test servers that must speak https:
// a process trusts it when started with NODE_EXTRA_CA_CERTS naming certFile.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ensurePackages } from './apt.js';

export interface TestCert {
  key: string;
  cert: string;
  certFile: string;
}

export async function loopbackCert(dir: string): Promise<TestCert> {
  await ensurePackages({ openssl: 'openssl' });
  const keyFile = join(dir, 'test-key.pem');
  const certFile = join(dir, 'test-cert.pem');
  await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', keyFile, '-out', certFile]);
  return { key: readFileSync(keyFile, 'utf8'), cert: readFileSync(certFile, 'utf8'), certFile };
}
