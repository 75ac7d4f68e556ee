/**
 * aedes as shipped, behind Node's TLS on the fleet's certificates (mutual
 * TLS, the same CA check): its own in-memory persistence and mqemitter, no
 * access control, none of PlaceGuard's hooks, patches or TLS gate. A bench
 * runs it beside PlaceGuard's broker to tell what aedes itself costs from
 * what PlaceGuard adds around it.
 *
 *   node bench/lib/aedes-broker.ts <port> <ca.pem> <server-cert.pem> <server-key.pem>
 *
 * Not a broker to run: anyone with a fleet certificate may do anything.
 */
import { readFileSync } from 'node:fs'
import { createServer } from 'node:tls'
import { Aedes } from 'aedes'

const [port, caFile, certFile, keyFile] = process.argv.slice(2)
if (!port || !caFile || !certFile || !keyFile) {
  process.stderr.write('usage: aedes-broker.ts <port> <ca.pem> <server-cert.pem> <server-key.pem>\n')
  process.exit(2)
}

// Device ids are up to 64 characters, beyond MQTT 3.1's 23 that aedes checks by default.
const aedes = await Aedes.createBroker({ maxClientsIdLength: 64 })
const server = createServer({
  ca: readFileSync(caFile), cert: readFileSync(certFile), key: readFileSync(keyFile),
  requestCert: true, rejectUnauthorized: true,
}, aedes.handle)
server.listen(Number(port), '127.0.0.1')
process.on('SIGTERM', () => { server.close(); process.exit(0) })
