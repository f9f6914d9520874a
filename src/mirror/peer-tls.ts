// TLS for the peer data plane, keyed by the node's libp2p identity: each node presents a self-signed
// certificate whose key IS its Ed25519 identity key, so a member's peer id names the only key that can
// complete a handshake as that member. Nothing here trusts a CA or the certificate's names or dates: the
// handshake proves possession of the key, and the client compares that key with the peer id it meant to reach.
import 'reflect-metadata'; // @peculiar/x509 resolves its parts through tsyringe, which needs it loaded first
import { createPrivateKey, randomBytes, webcrypto, type X509Certificate } from 'node:crypto';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromPublicKey } from '@libp2p/peer-id';
import * as x509 from '@peculiar/x509';

/** What a node presents on the data plane, server and client alike. */
export interface PeerTls {
  /** PKCS#8 PEM of the identity key. */
  key: string;
  /** The self-signed certificate, PEM. */
  cert: string;
  /** The peer id the certificate's key stands for. */
  id: string;
}

/** Only TLS 1.3: its handshake is signed by the certificate's key and encrypts the certificates too. */
export const TLS_VERSION = 'TLSv1.3';

const ED25519 = { name: 'Ed25519' };
const VALIDITY_MS = 10 * 365 * 24 * 3600_000;
/** Members' clocks may lag; no peer checks the dates anyway (they check the key). */
const BACKDATE_MS = 24 * 3600_000;

/** A certificate for this node's identity key, made at start. */
export async function peerTls(identity: PrivateKey): Promise<PeerTls> {
  if (identity.type !== 'Ed25519') throw new Error(`the peer data plane needs an Ed25519 identity, this node has ${identity.type}`);
  // A libp2p Ed25519 private key is the 32-byte seed followed by the 32-byte public key.
  const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
  const jwk = { kty: 'OKP', crv: 'Ed25519', d: b64(identity.raw.subarray(0, 32)), x: b64(identity.publicKey.raw) };
  const keys = {
    privateKey: await webcrypto.subtle.importKey('jwk', jwk, ED25519, false, ['sign']),
    publicKey: await webcrypto.subtle.importKey('jwk', { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, ED25519, true, ['verify']),
  };
  const id = peerIdFromPrivateKey(identity).toString();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomBytes(8).toString('hex').replace(/^[89a-f]/, '1'), // positive, as DER integers must be
    name: `CN=${id}, O=LayerMesh`,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + VALIDITY_MS),
    keys,
    signingAlgorithm: ED25519,
  });
  const key = createPrivateKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'pkcs8' }).toString();
  return { key, cert: cert.toString('pem'), id };
}

/** The peer id a certificate's public key stands for; throws when it holds no Ed25519 key. */
export function peerIdOfCertificate(cert: X509Certificate): string {
  const key = cert.publicKey;
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`certificate of ${cert.subject} holds a ${key.asymmetricKeyType ?? 'unknown'} key, not an Ed25519 peer identity`);
  }
  const { x } = key.export({ format: 'jwk' });
  return peerIdFromPublicKey(publicKeyFromRaw(Buffer.from(x!, 'base64url'))).toString();
}
