/**
 * Disabled `debug` loggers that cost nothing — for mqtt-packet, which aedes
 * parses and writes every MQTT packet with.
 *
 * mqtt-packet 9 calls its `debug` loggers about a dozen times per packet
 * (parser.js has 46 call sites, writeToStream.js 12). Switched off, as in
 * production, each call still allocates its rest-argument array and runs
 * the `enabled` getter: 6.6 % of the broker's CPU in the fleet QoS 1 bench,
 * plus the garbage it leaves (docs/perf/broker-fleet.md). Upstream, the
 * same fix is to guard the calls (`if (debug.enabled) debug(…)`).
 *
 * Here, without patching node_modules: mqtt-packet's parser.js and
 * writeToStream.js are evaluated once more, with their `require('debug')`
 * answered by a factory that hands a namespace not enabled by `DEBUG` at
 * start an empty function, and put on the mqtt-packet exports object, where
 * aedes looks `parser` and `writeToStream` up at each call (lib/client.js,
 * lib/write.js). The module cache is then put back as it was: anything else
 * requiring `debug` or these files gets the originals. A namespace enabled at
 * start (`DEBUG=mqtt-packet:*`) gets the real logger, as before. Works
 * whatever loaded mqtt-packet first (the CLI loads mqtt.js before the
 * broker). Relies on mqtt-packet 9's file names and exports (pinned ^9.0.2);
 * otherwise it changes nothing and emits a warning (`PG_QUIET_DEBUG`).
 */
import { createRequire } from 'node:module'

interface Debug { (namespace: string): DebugLogger, enabled: (namespace: string) => boolean }
interface DebugLogger { (...args: unknown[]): void, enabled: boolean, namespace: string, extend: (sub: string, delimiter?: string) => DebugLogger }
interface MqttPacket { parser: unknown, writeToStream: unknown }

function installQuietDebug (): boolean {
  const require = createRequire(import.meta.url)
  const packetRequire = createRequire(createRequire(require.resolve('aedes')).resolve('mqtt-packet'))
  const mqttPacket = packetRequire('mqtt-packet') as MqttPacket
  const real = packetRequire('debug') as Debug
  const debugEntry = require.cache[packetRequire.resolve('debug')]
  const files = [packetRequire.resolve('./parser.js'), packetRequire.resolve('./writeToStream.js')]
  if (typeof real !== 'function' || typeof real.enabled !== 'function' || !debugEntry ||
      typeof mqttPacket.parser !== 'function' || typeof mqttPacket.writeToStream !== 'function') {
    process.emitWarning('mqtt-packet or debug changed shape; mqtt-packet\'s debug calls keep their cost', { code: 'PG_QUIET_DEBUG' })
    return false
  }
  const silent = new Map<string, DebugLogger>()
  const quiet = function debug (namespace: string): DebugLogger {
    if (real.enabled(namespace)) return real(namespace)
    let logger = silent.get(namespace)
    if (!logger) {
      logger = Object.assign(() => {}, {
        enabled: false, namespace,
        extend: (sub: string, delimiter = ':') => quiet(`${namespace}${delimiter}${sub}`),
      })
      silent.set(namespace, logger)
    }
    return logger
  }
  // The rest of the module's API (enable, disable, formatters, …) is the real one.
  Object.assign(quiet, real, { default: quiet, debug: quiet })

  const saved = files.map((file) => require.cache[file])
  let parser: { parser?: unknown }
  let writeToStream: unknown
  try {
    for (const file of files) delete require.cache[file]
    debugEntry.exports = quiet
    parser = packetRequire('./parser.js') as { parser?: unknown }
    writeToStream = packetRequire('./writeToStream.js')
  } finally {
    debugEntry.exports = real
    files.forEach((file, i) => {
      if (saved[i]) require.cache[file] = saved[i]
      else delete require.cache[file]
    })
  }
  if (typeof parser.parser !== 'function' || typeof writeToStream !== 'function') {
    process.emitWarning('mqtt-packet changed shape; its debug calls keep their cost', { code: 'PG_QUIET_DEBUG' })
    return false
  }
  mqttPacket.parser = parser.parser
  mqttPacket.writeToStream = writeToStream
  return true
}

/** Whether aedes gets mqtt-packet with quiet loggers (false: see the warning). */
export const quietDebugInstalled = installQuietDebug()
