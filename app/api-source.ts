import type { ApiSource } from '../dashboards/index.ts'
import type { AnyOutboxStore, DeadLetter, Outbox } from '../delivery/index.ts'
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
    delivery: {
      metrics: () => outbox.metrics(),
      deadLetters: () => {
        const letters = outbox.deadLetters()
        return letters instanceof Promise ? letters.then(forViewers) : forViewers(letters)
      },
      requeue: (sink) => outbox.requeueDeadLetters(sink),
    },
    pipeline,
    ready,
    onAlertChange,
    tokens,
    auditTrail,
    advisories,
  }
}

/**
 * Dead letters as `/api/delivery` shows them to viewers: an audit trail
 * entry that could not reach the SOC keeps its seq, action and hash, and
 * loses who, whom and what — the trail itself is for operator tokens
 * (`GET /api/audit-trail`).
 */
function forViewers (letters: DeadLetter[]): DeadLetter[] {
  return letters.map((letter) => letter.change === 'audit'
    // Blanked, not left out: the letter keeps its shape, and requeueing it (by sink) needs none of them.
    ? { ...letter, audit: { seq: letter.audit.seq, at: letter.audit.at, action: letter.audit.action, hash: letter.audit.hash, actor: '', subject: null, from: null, detail: {} } }
    : letter)
}
