/**
 * Key names after docs/cluster.md. Every key of one authorization shares a hash tag,
 * so the multi-key commands work in Redis Cluster, and a code or token is stored under
 * the SHA-256 of its string, never in clear. The tag travels in the code and token
 * strings, `<tag>.<random>`, so the key can be found from what a client presents:
 *
 * - by grant: tokens `<grantId>.<random>`, keys `oauth:{g:<grantId>}:code:<sha256>`,
 *   `...:at:<sha256>`, `...:rt:<sha256>`, `oauth:{g:<grantId>}:grant`;
 * - by subject, for per-subject cutoffs (OAUTH.REVOKEBEFORE): tokens
 *   `<subject>.<grantId>.<random>`, keys `oauth:{u:<subject>}:g:<grantId>:code:<sha256>`,
 *   ..., and the cutoffs `oauth:{u:<subject>}:cutoff`, `oauth:{u:<subject>}:cutoff:<clientId>`.
 *   Use an opaque per-subject handle, not a user name or e-mail address.
 */

import { createHash, randomBytes } from 'node:crypto';
import { InvalidRequest } from './errors';

const ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Lowercase hex SHA-256 of a string (UTF-8). */
export function sha256Hex(value: string): string {
  return createHash('sha256').update(value, 'utf8').digest('hex');
}

/** A random identifier of `bytes` random bytes, base64url (no `.`, `{`, `}` or `:`). */
export function randomId(bytes = 8): string {
  return randomBytes(bytes).toString('base64url');
}

function checkId(value: string, name: string): string {
  if (!ID.test(value)) throw new InvalidRequest(`${name} must be 1 to 64 characters of A-Z a-z 0-9 _ -`);
  return value;
}

/** The keys of one authorization (one grant), all in one hash slot. */
export class GrantKeys {
  /** The grant set, for OAUTH.EXCHANGE ... GRANT and OAUTH.REVOKEGRANT. */
  readonly grant: string;

  /** Use `Keys.newGrant`, `Keys.newSubjectGrant` or `Keys.fromToken`. */
  constructor(
    private readonly base: string,
    private readonly handle: string,
    /** The cutoff keys to check on every introspection and rotation (subject scheme only). */
    readonly cutoffs: readonly string[],
  ) {
    this.grant = `${base}:grant`;
  }

  /** A new code or token string that carries this grant's tag: `<handle>.<43 random characters>`. */
  newToken(): string {
    return `${this.handle}.${randomId(32)}`;
  }

  /** The key of an authorization code string. */
  code(code: string): string {
    return `${this.base}:code:${sha256Hex(code)}`;
  }

  /** The key of an access-token string. */
  accessToken(token: string): string {
    return `${this.base}:at:${sha256Hex(token)}`;
  }

  /** The key of a refresh-token string. */
  refreshToken(token: string): string {
    return `${this.base}:rt:${sha256Hex(token)}`;
  }
}

export class Keys {
  constructor(private readonly namespace = 'oauth') {
    if (/[{}]/.test(namespace)) throw new InvalidRequest('the key namespace must not contain { or }');
  }

  /** A new authorization tagged by grant: `oauth:{g:<grantId>}:...`. */
  newGrant(grantId = randomId()): GrantKeys {
    return new GrantKeys(`${this.namespace}:{g:${checkId(grantId, 'grantId')}}`, grantId, []);
  }

  /** A new authorization tagged by subject, so that the subject's cutoff keys share its slot. */
  newSubjectGrant(subject: string, grantId = randomId()): GrantKeys {
    checkId(subject, 'subject');
    checkId(grantId, 'grantId');
    return new GrantKeys(`${this.namespace}:{u:${subject}}:g:${grantId}`, `${subject}.${grantId}`, [this.subjectCutoff(subject)]);
  }

  /** The keys of the authorization that a presented code or token string belongs to, or undefined for a malformed string. */
  fromToken(token: string): GrantKeys | undefined {
    const parts = token.split('.');
    if (!parts.every((part) => ID.test(part))) return undefined;
    if (parts.length === 2) return this.newGrant(parts[0]);
    if (parts.length === 3) return this.newSubjectGrant(parts[0], parts[1]);
    return undefined;
  }

  /** "Log this subject out everywhere": `oauth:{u:<subject>}:cutoff`. */
  subjectCutoff(subject: string): string {
    return `${this.namespace}:{u:${checkId(subject, 'subject')}}:cutoff`;
  }

  /** "Revoke this subject's tokens for one client": `oauth:{u:<subject>}:cutoff:<clientId>`. */
  clientCutoff(subject: string, clientId: string): string {
    return `${this.subjectCutoff(subject)}:${clientId}`;
  }

  /** A client registration: `oauth:client:<clientId>`. */
  client(clientId: string): string {
    return `${this.namespace}:client:${clientId}`;
  }

  /** A CSRF state or nonce, by the SHA-256 of its value: `oauth:state:<sha256>`. */
  state(state: string): string {
    return `${this.namespace}:state:${sha256Hex(state)}`;
  }
}
