/**
 * The operators' view: the replies of OAUTH.SCAN and OAUTH.PURGECLIENT, and the census
 * of `INFO oauth_census`, read alike whatever the protocol and client.
 */

import { ServerError } from './errors';
import { entries, Fields, int, str } from './replies';

/**
 * The classes of records the module lists and counts. Codes and refresh tokens are
 * split in two: the live ones, and the tombstones kept to detect a replay (a redeemed
 * code, a rotated refresh token). A `grant` is a grant's index set.
 */
export const RECORD_KINDS = ['code', 'redeemed_code', 'token', 'refresh', 'rotated_refresh', 'client', 'state', 'grant'] as const;

export type RecordKind = (typeof RECORD_KINDS)[number];

/** A number for every record kind. */
export type KindCounts = Record<RecordKind, number>;

/** A record found by OAUTH.SCAN. */
export interface ListedRecord {
  /** Its key, without the client's `prefix`. */
  key: string;
  kind: RecordKind;
  /** When the key expires, Unix ms; null for a key without expiry. */
  expiresAtMs: number | null;
  /** When the record was created, Unix ms; null when unknown (grants). */
  createdMs: number | null;
  /**
   * The record's own fields (without the module's bookkeeping). For a grant: `members`
   * (how many, as a string) and the `client_id` and `sub` of one of its members.
   */
  fields: Fields;
}

/** The filters of OAUTH.SCAN. */
export interface ScanOptions {
  /** A SCAN `MATCH` glob on key names (the client's `prefix` is prepended). */
  match?: string;
  /** Keys looked at per step, 1 to 10000 (the module's default is 10). */
  count?: number;
  /** Only records of this kind. */
  kind?: RecordKind;
  /** Only records whose `client_id` is this one. */
  clientId?: string;
  /** Only records whose `sub` is this one. */
  subject?: string;
}

/** One OAUTH.SCAN step. */
export interface ScanPage {
  /** Where the next step resumes; `'0'` when the walk of the node is over. */
  cursor: string;
  /** What this step found; may be empty while `cursor` is not `'0'`. */
  records: ListedRecord[];
}

/** The live counts of `INFO oauth_census`, over every primary. */
export interface Census {
  /** Records by kind, summed over the primaries, as their last census pass found them. */
  counts: KindCounts;
  /**
   * Distinct subjects (`sub`) of live access and refresh tokens, summed over the
   * primaries: each node counts its own, so in Cluster a subject with tokens on two
   * nodes counts twice.
   */
  subjects: number;
  /** Keys looked at by the last pass, summed over the primaries. */
  keys: number;
  /** Passes completed since the module loaded: the fewest of any primary. */
  passes: number;
  /** How old the counts are, ms: the oldest of any primary; null until every primary completed a pass. */
  ageMs: number | null;
  /** How long the last pass took, ms: the longest of any primary; null until every primary completed a pass. */
  durationMs: number | null;
  /** How many primaries answered. */
  nodes: number;
}

function unexpected(what: string): ServerError {
  return new ServerError('ERR', `unexpected reply from the module: ${what}`);
}

function isKind(value: string): value is RecordKind {
  return (RECORD_KINDS as readonly string[]).includes(value);
}

/** `-1` (none) as null. */
function optional(value: unknown): number | null {
  const n = int(value);
  return n < 0 ? null : n;
}

export function zeroCounts(): KindCounts {
  return Object.fromEntries(RECORD_KINDS.map((k) => [k, 0])) as KindCounts;
}

function cursorAnd(reply: unknown): [string, unknown] {
  if (!Array.isArray(reply) || reply.length !== 2) throw unexpected('expected [cursor, items]');
  return [str(reply[0]), reply[1]];
}

function listed(item: unknown, unprefixed: (key: string) => string): ListedRecord {
  const map = new Map(entries(item));
  const kind = str(map.get('kind'));
  if (!isKind(kind)) throw unexpected(`unknown record kind ${kind}`);
  const fields: Fields = {};
  for (const [name, value] of entries(map.get('fields'))) fields[name] = str(value);
  return {
    key: unprefixed(str(map.get('key'))),
    kind,
    expiresAtMs: optional(map.get('expires_at_ms')),
    createdMs: optional(map.get('created_ms')),
    fields,
  };
}

/** An OAUTH.SCAN reply: `[cursor, [map, ...]]`. */
export function scanPage(reply: unknown, unprefixed: (key: string) => string): ScanPage {
  const [cursor, items] = cursorAnd(reply);
  if (!Array.isArray(items)) throw unexpected('expected an array of records');
  return { cursor, records: items.map((item) => listed(item, unprefixed)) };
}

/** An OAUTH.PURGECLIENT reply: `[cursor, {kind: count, ...}]`. */
export function purgeStep(reply: unknown): { cursor: string; counts: KindCounts } {
  const [cursor, map] = cursorAnd(reply);
  const counts = zeroCounts();
  for (const [name, value] of entries(map)) if (isKind(name)) counts[name] = int(value);
  return { cursor, counts };
}

export function addCounts(into: KindCounts, more: KindCounts): void {
  for (const kind of RECORD_KINDS) into[kind] += more[kind];
}

/** One node's census, from its `INFO oauth_census` text. */
export interface NodeCensus {
  counts: KindCounts;
  subjects: number;
  keys: number;
  passes: number;
  ageMs: number;
  durationMs: number;
}

export function nodeCensus(info: unknown): NodeCensus {
  const values = new Map<string, number>();
  for (const line of str(info).split(/\r?\n/)) {
    const match = /^oauth_([a-z_]+):(-?\d+)$/.exec(line.trim());
    if (match) values.set(match[1], Number(match[2]));
  }
  const field = (name: string): number => {
    const value = values.get(name);
    if (value === undefined) {
      throw new ServerError('ERR', `INFO oauth_census has no oauth_${name}: is the module loaded, in a version with the census, and not busy?`);
    }
    return value;
  };
  const counts = zeroCounts();
  for (const kind of RECORD_KINDS) counts[kind] = field(`records_${kind}`);
  return {
    counts,
    subjects: field('subjects'),
    keys: field('census_keys'),
    passes: field('census_passes'),
    ageMs: field('census_age_ms'),
    durationMs: field('census_duration_ms'),
  };
}

/** The nodes' censuses together: counts summed, the fewest passes, the oldest age. */
export function combineCensus(nodes: readonly NodeCensus[]): Census {
  const counts = zeroCounts();
  nodes.forEach((n) => addCounts(counts, n.counts));
  const never = nodes.some((n) => n.passes === 0 || n.ageMs < 0);
  return {
    counts,
    subjects: nodes.reduce((sum, n) => sum + n.subjects, 0),
    keys: nodes.reduce((sum, n) => sum + n.keys, 0),
    passes: nodes.length === 0 ? 0 : Math.min(...nodes.map((n) => n.passes)),
    ageMs: never || nodes.length === 0 ? null : Math.max(...nodes.map((n) => n.ageMs)),
    durationMs: never || nodes.length === 0 ? null : Math.max(...nodes.map((n) => n.durationMs)),
    nodes: nodes.length,
  };
}
