/**
 * A bulk issue in another process (test/pki/pki-process.ts), killed with
 * SIGKILL once it has reported `atLeast` identities done: the crash tests'
 * real kill -9 mid-batch. Resolves with the last count it reported.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'

const PROCESS = join(import.meta.dirname, '..', 'pki', 'pki-process.ts')

/** Into files, or into one archive when `archive` names one. */
export function issueAndKill (dataDir: string, count: number, atLeast: number, archive?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [PROCESS, 'issue', dataDir, String(count), 'bulk', ...(archive ? [archive] : [])], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let done = 0
    let killed = false
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    child.stdout.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) if (/^\d+$/.test(line)) done = Math.max(done, Number(line))
      if (!killed && done >= atLeast) {
        killed = true
        child.kill('SIGKILL')
      }
    })
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(done)
      else reject(new Error(`the issuing process was not killed mid-run (exit ${code}): ${stderr}`))
    })
  })
}
