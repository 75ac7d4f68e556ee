/**
 * The LoRaWAN network servers PlaceGuard reads, on their own: certificate
 * identities name them, and the signing workers that build those
 * certificates should not load lorawan.ts's payload schemas (zod) to do
 * it (docs/perf/pki-profile.md).
 */
export const LORAWAN_NETWORKS = ['chirpstack', 'tts'] as const
export type LorawanNetwork = typeof LORAWAN_NETWORKS[number]
