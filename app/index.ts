/**
 * The composition root: PlaceGuard's processes (`up`, `broker`,
 * `collector`) assembled from the rooms below. Only cli/ sits above it.
 */
export { createCollectorService, type CollectorService, type PipelineMetrics } from './collector-service.ts'
export { apiSourceFrom, apiSourceOf, type ApiParts } from './api-source.ts'
export { startBrokerProcess, type BrokerProcess } from './broker-process.ts'
export { startUp, type DemoFleet, type UpProcess } from './up-process.ts'
export { startCollectorProcess, type CollectorProcess } from './collector-process.ts'
export { loadConfig, type Config, type ConfigSources } from './config.ts'
export { readClusterStatus, shareCrl, shareSupplierGrants } from './cluster-admin.ts'
export { auditedCliAction, readAuditTrail, verifyAuditTrail, type AuditTrailCheck, type CliAction, type CliNote } from './audit-admin.ts'
export { openAdvisories, type OpenedAdvisories } from './advisory-admin.ts'
