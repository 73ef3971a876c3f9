/**
 * Redis Cluster hash slots, computed as the server computes them.
 *
 * The package computes slots itself rather than through `cluster-key-slot`: version
 * 1.1.2 (used by node-redis 4 and 5) hashes a key such as `{}{a}` by its second tag,
 * while Redis hashes the whole key because its first tag is empty.
 */

const SLOTS = 16384;

function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) {
      crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
    }
  }
  return crc;
}

/** The part of a key that Redis hashes: the text between the first `{` and the next `}` if non-empty, else the whole key. */
export function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** The hash slot of a key (what `CLUSTER KEYSLOT` answers). */
export function slotOf(key: string): number {
  return crc16(Buffer.from(hashedPart(key), 'utf8')) % SLOTS;
}

const tagsBySlot = new Map<number, string>();

/**
 * A string in the same slot as `key` that any client library slots correctly, to pass
 * as node-redis's `firstKey`: the key's hash tag, the key itself when it has no
 * braces, otherwise a short `{tag}` found for that slot.
 */
export function routingKey(key: string): string {
  const part = hashedPart(key);
  if (part !== key || !key.includes('{')) return part;
  const slot = slotOf(key);
  let tag = tagsBySlot.get(slot);
  for (let n = 0; tag === undefined; n++) {
    if (slotOf(n.toString(36)) === slot) tag = n.toString(36);
  }
  tagsBySlot.set(slot, tag);
  return `{${tag}}`;
}
