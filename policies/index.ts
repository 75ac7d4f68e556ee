/**
 * The policies room: the policy files' schema and loader, the pure rules,
 * and the engine that runs them. Rules and their helpers stay inside;
 * detection/ drives the engine.
 */
export { ALERT_THREATS, POLICY_IDS, POLICY_THREATS, SYSTEM_ALERT_IDS, type AlertPolicy, type PolicyId, type PolicyThreat, type Stride } from './catalogue.ts'
export { SEVERITIES, type Policy, type Severity } from './schema.ts'
export { loadPolicyDirectory, loadPolicySet, validatePolicyText, type LoadedPolicy, type PolicySet } from './loader.ts'
export type { QuietWindow } from './quiet-windows.ts'
export type { Finding, TelemetryObservation } from './finding.ts'
export { LATE_MS, PolicyEngine, type Clear, type DeviceImport, type Verdict } from './engine.ts'
export { DEVICE_SNAPSHOT_VERSION, type DeviceSnapshot } from './device-snapshot.ts'
