/**
 * One reading of a reply whatever the protocol and client: RESP2 flat arrays with
 * 1/0, RESP3 maps (plain objects or `Map`s) with booleans, strings or Buffers.
 */

import { ServerError } from './errors';

export type Fields = Record<string, string>;

function unexpected(what: string): ServerError {
  return new ServerError('ERR', `unexpected reply from the module: ${what}`);
}

export function str(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  // node-redis's RESP3 verbatim strings (INFO) may be String objects.
  if (value instanceof String) return value.toString();
  throw unexpected(`expected a string, got ${typeof value}`);
}

export function int(value: unknown): number {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'bigint') return Number(value);
  if (typeof value === 'string' || Buffer.isBuffer(value)) {
    const text = value.toString();
    if (/^-?\d+$/.test(text)) return Number(text);
  }
  throw unexpected(`expected an integer, got ${typeof value}`);
}

export function bool(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  const n = int(value);
  if (n === 0 || n === 1) return n === 1;
  throw unexpected(`expected a boolean, got ${n}`);
}

export function strs(value: unknown): string[] {
  if (!Array.isArray(value)) throw unexpected('expected an array');
  return value.map(str);
}

export function ints(value: unknown, length: number): number[] {
  if (!Array.isArray(value) || value.length !== length) throw unexpected(`expected ${length} integers`);
  return value.map(int);
}

/** The entries of a map reply, in order. */
export function entries(value: unknown): Array<[string, unknown]> {
  if (Array.isArray(value)) {
    if (value.length % 2 !== 0) throw unexpected('a flat map of odd length');
    const out: Array<[string, unknown]> = [];
    for (let i = 0; i < value.length; i += 2) out.push([str(value[i]), value[i + 1]]);
    return out;
  }
  if (value instanceof Map) return [...value].map(([k, v]): [string, unknown] => [str(k), v]);
  if (typeof value === 'object' && value !== null) return Object.entries(value);
  throw unexpected(`expected a map, got ${value === null ? 'null' : typeof value}`);
}

/**
 * A map reply split into the caller's fields and the module's entries (`active`,
 * `exp`, `iat`, `client_secret_expires_at`, and names starting with `_`), which are
 * returned unconverted.
 */
export function split(value: unknown, moduleNames: readonly string[] = []): { fields: Fields; extra: Map<string, unknown> } {
  const fields: Fields = {};
  const extra = new Map<string, unknown>();
  for (const [name, v] of entries(value)) {
    if (name.startsWith('_') || moduleNames.includes(name)) extra.set(name, v);
    else fields[name] = str(v);
  }
  return { fields, extra };
}
