import type { ApiSource } from '../dashboards/index.ts'
import type { AnyOutboxStore, Outbox } from '../delivery/index.ts'
import type { Detection } from '../detection/index.ts'
import type { FleetView } from '../fleet/index.ts'
import { validatePolicyText } from '../policies/index.ts'
import type { CollectorService } from './collector-service.ts'

/**
 * The parts of a running collector the API reads and acts on. A collector
 * service has them all; tests hand in the same classes built in memory,
 * without a broker behind them.
 */
export interface ApiParts {
  detection: Pick<Detection, 'alerts' | 'acknowledge' | 'resolve' | 'comment' | 'rateOf' | 'policySet' | 'reloadPolicies' | 'liftQuarantine'>
  fleet: FleetView
  outbox: Pick<Outbox<AnyOutboxStore>, 'metrics' | 'deadLetters' | 'requeueDeadLetters'>
  pipeline: ApiSource['pipeline']
  ready: ApiSource['ready']
  onAlertChange: ApiSource['onAlertChange']
  /** The operator audit trail the API records actions in. */
  auditTrail: ApiSource['auditTrail']
  /** Synced advisories and devices' vendor and model (app/advisory-feed.ts). */
  advisories?: ApiSource['advisories']
}

/**
 * What a collector service offers the API, in the API's own terms: the
 * dashboard depends on neither the collector nor detection; this root
 * hands it what it reads.
 */
export function apiSourceFrom (service: CollectorService, tokens: ApiSource['tokens']): ApiSource {
  return apiSourceOf({
    detection: service.detection,
    fleet: service.fleet,
    outbox: service.outbox,
    pipeline: () => ({ ...service.metrics() }),
    ready: () => ({ broker: service.collector.connected, store: !service.spool.nearFull }),
    onAlertChange: service.onAlertChange,
    auditTrail: service.auditTrail,
    advisories: { list: () => service.advisories.listing, productOf: (id) => service.advisories.productOf(id), match: (product, fw) => service.advisories.match(product, fw) },
  }, tokens)
}

export function apiSourceOf ({ detection, fleet, outbox, pipeline, ready, onAlertChange, auditTrail, advisories }: ApiParts, tokens: ApiSource['tokens']): ApiSource {
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
    pipeline,
    ready,
    onAlertChange,
    tokens,
    auditTrail,
    advisories,
  }
}
