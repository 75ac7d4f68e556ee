import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { PlaceGuardError } from '../shared/errors.ts'
import { loadYamlFile, parseYamlText } from '../shared/yaml-file.ts'
import { maintenanceWindow, type QuietWindow, suppressionWindow } from './quiet-windows.ts'
import { type Policy, policyFileSchema } from './schema.ts'

export interface LoadedPolicy { policy: Policy, file: string }
export interface PolicySet { policies: LoadedPolicy[], windows: QuietWindow[] }

export function loadPolicyDirectory (dir: string): LoadedPolicy[] {
  return loadPolicySet(dir).policies
}

/**
 * Reads every `*.yaml` in a directory (sorted, so the result does not
 * depend on the filesystem). A policy id may be configured once across
 * all files: two files setting the same thresholds differently would make
 * one of them silently lose.
 */
export function loadPolicySet (dir: string): PolicySet {
  const files = readdirSync(dir).filter((name) => name.endsWith('.yaml') || name.endsWith('.yml')).sort()
  const loaded: LoadedPolicy[] = []
  const windows: QuietWindow[] = []
  const seen = new Map<string, string>()
  for (const name of files) {
    const file = join(dir, name)
    const { policies = [], maintenance = [], suppressions = [] } = loadYamlFile(file, policyFileSchema, 'PG_ERR_POLICY_INVALID', 'policy file')
    windows.push(...maintenance.map(maintenanceWindow), ...suppressions.map(suppressionWindow))
    policies.forEach((policy, index) => {
      const earlier = seen.get(policy.id)
      if (earlier) {
        throw new PlaceGuardError('PG_ERR_POLICY_INVALID', `policy file ${file}: policies.${index}.id: "${policy.id}" is already configured in ${earlier}`, { field: `policies.${index}.id` })
      }
      seen.set(policy.id, file)
      loaded.push({ policy, file })
    })
  }
  return { policies: loaded, windows }
}

/** Checks the text of one policy file without applying it (the API's validate); throws PG_ERR_POLICY_INVALID naming line and field. */
export function validatePolicyText (text: string, name = 'policy.yaml'): void {
  parseYamlText(text, name, policyFileSchema, 'PG_ERR_POLICY_INVALID', 'policy file')
}
