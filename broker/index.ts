export { PlaceGuardBroker, DEFAULT_BROKER_LIMITS, type BrokerLimits, type BrokerOptions, type SessionInfo } from './broker.ts'
export { SECURITY_EVENT_TYPES, type SecurityEvent, type SecurityEventType } from './security-events.ts'
export { canPublish, canSubscribe } from './acl.ts'
export { MAX_QUARANTINE_MS, QUARANTINE_FILE, QuarantineList, quarantineCommandSchema, type QuarantineCommand, type QuarantineEntry } from './quarantine.ts'
