/**
 * FNV-1a, 32 bits, over a string's UTF-16 code units: a fast, stable hash
 * for picking a partition, telling resent readings apart or spreading keys.
 * Not for anything an attacker must not be able to collide.
 */
export function fnv1a (text: string): number {
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193) >>> 0
  return hash
}
