// placeholder, replaced below
import mqemitter from 'mqemitter'
export function createFastMqEmitter (options: { concurrency: number }) {
  return mqemitter(options)
}
