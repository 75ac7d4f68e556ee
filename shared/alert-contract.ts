/**
 * The words of the alert contract (docs/product.md): the policy ids that alerts,
 * policy files and sink routing name, and the severities. Every room speaks
 * them — the policies define what each id means, delivery routes by them,
 * configuration validates them — so they live here, where any room may
 * import them without importing another room.
 */
export const POLICY_IDS = [
  'cert-expiry', 'cert-rejected', 'cert-revoked-attempt', 'firmware-outdated', 'firmware-vulnerable',
  'firmware-downgrade', 'rate-burst', 'device-silent', 'acl-violation', 'identity-clone',
  'connection-flapping', 'value-implausible', 'payload-invalid', 'clock-skew', 'replay',
] as const

export type PolicyId = typeof POLICY_IDS[number]

export const SEVERITIES = ['info', 'low', 'medium', 'high', 'critical'] as const

export type Severity = typeof SEVERITIES[number]
