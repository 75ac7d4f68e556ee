/**
 * Certificates the fleet CA did not sign, claiming a real device's identity:
 * what an attacker, or a device flashed with the wrong fleet's material,
 * presents. The simulator uses them to prove `cert-rejected` fires.
 */
import type { x509 } from './certificates.ts';
import { generateKey, createCaCertificate, createLeafCertificate, loadSigner, minutesAgo, newSerialNumber } from './certificates.ts'
import type { DeviceKind } from '../shared/ids.ts'

export interface UntrustedIdentity { certificatePem: string, privateKeyPem: string }

export async function createUntrustedIdentity (deviceId: string, kind: DeviceKind, site: string, mode: 'foreign-ca' | 'self-signed'): Promise<UntrustedIdentity> {
  const key = await generateKey('ecdsa-p256')
  const notAfter = new Date(Date.now() + 30 * 86_400_000)
  if (mode === 'self-signed') {
    // A CA-shaped certificate whose subject is the device: issuer = subject, signed by its own key.
    return { certificatePem: await createCaCertificate(key, deviceId, notAfter), privateKeyPem: key.privateKeyPem }
  }
  const foreignKey = await generateKey('ecdsa-p256')
  const foreignCa = await loadSigner(await createCaCertificate(foreignKey, 'PlaceGuard Fleet CA', notAfter), foreignKey.privateKeyPem)
  const certificate: x509.X509Certificate = await createLeafCertificate(foreignCa, {
    publicKeyDer: key.publicKeyDer, commonName: deviceId, identity: { role: 'device', deviceId, kind, site },
    usage: 'client', notBefore: minutesAgo(5), notAfter, serialNumber: newSerialNumber(),
  })
  return { certificatePem: certificate.toString('pem'), privateKeyPem: key.privateKeyPem }
}
