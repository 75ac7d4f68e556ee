/**
 * Every policy PlaceGuard knows (docs/product.md ids), with the threat it
 * answers: its STRIDE category and, where one fits, the MITRE ATT&CK for
 * ICS technique an analyst can look up.
 */
import { type AlertPolicy, POLICY_IDS, type PolicyId, SYSTEM_ALERT_IDS, type SystemAlertId } from '../shared/alert-contract.ts'

export { type AlertPolicy, POLICY_IDS, type PolicyId, SYSTEM_ALERT_IDS, type SystemAlertId }

export type Stride = 'Spoofing' | 'Tampering' | 'Repudiation' | 'Information disclosure' | 'Denial of service' | 'Elevation of privilege'

export interface PolicyThreat {
  stride: Stride
  /** MITRE ATT&CK for ICS technique, e.g. T0830. */
  attack?: { id: string, name: string }
  /** One sentence for the alert and the docs. */
  summary: string
}

export const POLICY_THREATS: Record<PolicyId, PolicyThreat> = {
  'cert-expiry': { stride: 'Denial of service', summary: 'a device certificate expires soon; the device will be locked out' },
  'cert-rejected': { stride: 'Spoofing', attack: { id: 'T0859', name: 'Valid Accounts' }, summary: 'a connection presented a certificate the fleet CA does not accept' },
  'cert-revoked-attempt': { stride: 'Spoofing', attack: { id: 'T0859', name: 'Valid Accounts' }, summary: 'a revoked identity is trying to connect' },
  'firmware-outdated': { stride: 'Tampering', attack: { id: 'T0866', name: 'Exploitation of Remote Services' }, summary: 'a device runs firmware older than the minimum for its kind' },
  'firmware-vulnerable': { stride: 'Tampering', attack: { id: 'T0866', name: 'Exploitation of Remote Services' }, summary: 'a device runs firmware with a known vulnerability' },
  'firmware-downgrade': { stride: 'Tampering', attack: { id: 'T0857', name: 'System Firmware' }, summary: 'a device went back to an older firmware version' },
  'rate-burst': { stride: 'Denial of service', attack: { id: 'T0814', name: 'Denial of Service' }, summary: 'a device publishes far faster than its baseline and its peers' },
  'device-silent': { stride: 'Denial of service', attack: { id: 'T0815', name: 'Denial of View' }, summary: 'a device stopped reporting' },
  'acl-violation': { stride: 'Elevation of privilege', attack: { id: 'T0842', name: 'Network Sniffing' }, summary: 'a device tried to publish or subscribe outside its own topics' },
  'identity-clone': { stride: 'Spoofing', attack: { id: 'T0849', name: 'Masquerading' }, summary: 'the same identity is connected from two places' },
  'connection-flapping': { stride: 'Denial of service', summary: 'a device connects and disconnects repeatedly' },
  'value-implausible': { stride: 'Tampering', attack: { id: 'T0832', name: 'Manipulation of View' }, summary: 'a reading is physically implausible' },
  'payload-invalid': { stride: 'Tampering', attack: { id: 'T0830', name: 'Adversary-in-the-Middle' }, summary: 'a device sent telemetry that does not match its schema' },
  'clock-skew': { stride: 'Repudiation', summary: 'a device clock is far from the collector time' },
  'replay': { stride: 'Spoofing', attack: { id: 'T0830', name: 'Adversary-in-the-Middle' }, summary: 'a message was repeated or its sequence went backwards' },
  'lorawan-unknown-device': { stride: 'Spoofing', attack: { id: 'T0849', name: 'Masquerading' }, summary: 'a network server published for a DevEUI not registered to its integration (or registered to another one)' },
  'lorawan-fcnt-reset': { stride: 'Spoofing', attack: { id: 'T0830', name: 'Adversary-in-the-Middle' }, summary: 'a LoRaWAN frame counter went back with no join in between: a replayed frame, or an ABP device reset that re-opens replay' },
  'lorawan-join-flood': { stride: 'Denial of service', attack: { id: 'T0814', name: 'Denial of Service' }, summary: 'a LoRaWAN device (or an integration\'s devices) joined far more often than a device rejoins' },
  'lorawan-gateway-shift': { stride: 'Spoofing', attack: { id: 'T0849', name: 'Masquerading' }, summary: 'a fixed LoRaWAN device is heard only through gateways it never used, while its usual gateways still hear others: relocated or cloned' },
  // A supplier's remote access is an external remote service into the control network (ATT&CK for ICS T0822, initial access).
  'supplier-access-outside-window': { stride: 'Elevation of privilege', attack: { id: 'T0822', name: 'External Remote Services' }, summary: 'a supplier connected or sent a command outside its declared access windows' },
  'lorawan-signal-shift': { stride: 'Tampering', attack: { id: 'T0832', name: 'Manipulation of View' }, summary: 'a fixed LoRaWAN device\'s RSSI/SNR left its learned baseline for several uplinks: moved, tampered with, or jammed' },
}

export const ALERT_THREATS: Record<AlertPolicy, PolicyThreat> = {
  ...POLICY_THREATS,
  'delivery-failing': { stride: 'Denial of service', summary: 'alerts cannot be delivered to a SOC sink; they wait in the outbox or the dead-letter list' },
  'pipeline-stalled': { stride: 'Denial of service', summary: 'the collector stalled or fell behind its input; devices are not judged silent until it has caught up' },
  'alert-storm': { stride: 'Denial of service', summary: 'one policy fired for a large share of a kind at a site at once: one correlated alert instead of a page per device' },
}
