/**
 * Debian's mosquitto_pub / mosquitto_sub: an MQTT client PlaceGuard did not
 * write, to show the broker speaks plain MQTT over mutual TLS.
 */
import { spawn, type ChildProcess } from 'node:child_process'

export interface TlsFiles { cafile: string, cert?: string, key?: string }

function tlsArgs (port: number, tls: TlsFiles, clientId?: string): string[] {
  return [
    '-h', '127.0.0.1', '-p', String(port), '--cafile', tls.cafile,
    ...(tls.cert ? ['--cert', tls.cert] : []), ...(tls.key ? ['--key', tls.key] : []),
    ...(clientId ? ['-i', clientId] : []),
  ]
}

export function mosquittoPub (port: number, tls: TlsFiles, clientId: string | undefined, topic: string, message: string, qos = 1): Promise<{ code: number | null, stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('mosquitto_pub', [...tlsArgs(port, tls, clientId), '-t', topic, '-m', message, '-q', String(qos)])
    let stderr = ''
    child.stderr.on('data', (chunk) => { stderr += chunk })
    child.on('close', (code) => resolve({ code, stderr }))
  })
}

export interface Subscriber {
  /** Lines as mosquitto_sub -v prints them: "<topic> <payload>". */
  lines: string[]
  ready: Promise<void>
  exitCode: Promise<number | null>
  stop: () => void
  process: ChildProcess
}

/** `persistent`: `-c`, a session the broker keeps (clean session false) with what is queued for it. */
export function mosquittoSub (port: number, tls: TlsFiles, clientId: string, topics: string[], options: { persistent?: boolean } = {}): Subscriber {
  // stdbuf: mosquitto_sub block-buffers stdout into a pipe; we need each line as it comes.
  const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', ...tlsArgs(port, tls, clientId), '-v', '-q', '1', '-d', ...options.persistent ? ['-c'] : [], ...topics.flatMap((t) => ['-t', t])])
  const lines: string[] = []
  let buffer = ''
  let onReady: () => void
  const ready = new Promise<void>((resolve) => { onReady = resolve })
  child.stdout.on('data', (chunk: Buffer) => {
    buffer += chunk.toString()
    const parts = buffer.split('\n')
    buffer = parts.pop()!
    for (const line of parts) {
      // -d prints protocol traces on stdout too; keep only the messages.
      if (line.includes('received SUBACK')) onReady()
      else if (!/^Client .* (sending|received) /.test(line) && !line.startsWith('Subscribed (mid')) lines.push(line)
    }
  })
  const exitCode = new Promise<number | null>((resolve) => child.on('close', resolve))
  // SIGTERM lets mosquitto_sub send its DISCONNECT; one that has not exited 3 s later is killed.
  const stop = (): void => {
    child.kill('SIGTERM')
    setTimeout(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') }, 3_000).unref()
  }
  return { lines, ready, exitCode, stop, process: child }
}
