import type { ApiSource } from '../dashboards/index.ts'
import { validatePolicyText } from '../policies/index.ts'
import type { CollectorService } from './collector-service.ts'

/**
 * What a collector service offers the API, in the API's own terms: the
 * dashboard depends on neither the collector nor detection; this root
 * hands it what it reads.
 */
export function apiSourceFrom (service: CollectorService, tokens: ApiSource['tokens']): ApiSource {
  const { detection, outbox, fleet } = service
  return {
    fleet,
    alerts: detection.alerts,
    acknowledge: (id, by) => detection.acknowledge(id, by),
    resolve: (id, by) => detection.resolve(id, by),
    comment: (id, by, text) => detection.comment(id, by, text),
    rateOf: (deviceId) => detection.rateOf(deviceId),
    policies: () => detection.policySet,
    validatePolicy: (yaml) => {
      try {
        validatePolicyText(yaml)
        return { valid: true }
      } catch (error) {
        return { valid: false, error: (error as Error).message }
      }
    },
    reloadPolicies: () => detection.reloadPolicies(),
    liftQuarantine: (deviceId, by) => detection.liftQuarantine(deviceId, by),
    delivery: { metrics: () => outbox.metrics(), deadLetters: () => outbox.deadLetters(), requeue: (sink) => outbox.requeueDeadLetters(sink) },
    pipeline: () => ({ ...service.metrics() }),
    ready: () => ({ broker: service.collector.connected, store: !service.spool.nearFull }),
    onAlertChange: service.onAlertChange,
    tokens,
  }
}
