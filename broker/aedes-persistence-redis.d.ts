// aedes-persistence-redis ships no types; the factory is all PlaceGuard calls (broker/redis-state.ts).
declare module 'aedes-persistence-redis' {
  export default function aedesPersistenceRedis (options?: Record<string, unknown>): unknown
}
