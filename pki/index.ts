export {
  FleetPki, type CertificateEntry, type IntegrationRequest, type IssueRequest, type IssuedDevice, type InventoryEntry, type InitOptions,
  type LorawanDeviceRequest, type LorawanEntry, type ReconcileReport, type SupplierGrant, type SupplierRequest,
} from './fleet-pki.ts'
export { DEFAULT_DEVICE_DAYS, type ValidityInput } from './validity.ts'
export { type Identity, identityFromSubjectAltName, identityName, identityUri, parseIdentityUri } from './identity.ts'
export { pkiPaths, deviceFiles, type PkiPaths } from './paths.ts'
export { readOrCreateTicketSecret, TICKET_SECRET_FILE } from './tls-ticket-secret.ts'
export { SUPPLIER_GRANTS_FILE, SupplierGrantsFile, supplierGrantsPath, writeSupplierGrants } from './supplier-grants-file.ts'
export type { KeyAlgorithm } from './certificates.ts'
export type { CertificateRole, InventoryRecord, InventoryStatus, LorawanDeviceRecord, SupplierRecord } from './inventory.ts'
export { readCrl, normalizeSerial, certificateOrigin, type CertificateOrigin, type CrlSummary } from './crl.ts'
export { createUntrustedIdentity, type UntrustedIdentity } from './untrusted.ts'
export { deviceProductOf, type DeviceProduct } from './device-products.ts'
export { signingThreadsFor } from './leaf-issuer.ts'
export { assertDeviceIdentity } from './identity-rules.ts'
export { readTarMembers, splitArchiveMemberPath } from './identity-archive.ts'
