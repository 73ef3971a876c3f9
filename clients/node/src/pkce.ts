/** PKCE (RFC 7636) helpers: make a verifier and its S256 challenge, and refuse malformed values before they are saved. */

import { createHash, randomBytes } from 'node:crypto';
import { InvalidRequest, OAuthError } from './errors';

const SYNTAX = /^[A-Za-z0-9\-._~]{43,128}$/;

export interface PkcePair {
  /** Kept by the client, sent at the token endpoint as `code_verifier`. */
  verifier: string;
  /** Sent at /authorize as `code_challenge`, saved with the code. */
  challenge: string;
  method: 'S256';
}

/**
 * Throws `error` (by default an `InvalidRequest`) unless `value` is 43 to 128
 * characters of `A-Z a-z 0-9 - . _ ~` (RFC 7636 §4.1). The message names the
 * parameter and its length, never the value.
 */
export function assertPkceSyntax(
  value: string,
  name: 'code_verifier' | 'code_challenge',
  error: new (description: string) => OAuthError = InvalidRequest,
): void {
  if (SYNTAX.test(value)) return;
  const what = value.length < 43 || value.length > 128 ? `it has ${value.length}` : 'it has other characters';
  throw new error(`${name} must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~ (RFC 7636 §4.1); ${what}`);
}

/** BASE64URL(SHA-256(verifier)) without padding, after checking the verifier's syntax. */
export function s256Challenge(verifier: string): string {
  assertPkceSyntax(verifier, 'code_verifier');
  return createHash('sha256').update(verifier, 'ascii').digest('base64url');
}

/** A random verifier of `length` characters (43 to 128, default 64) and its S256 challenge. */
export function createPkcePair(length = 64): PkcePair {
  if (!Number.isInteger(length) || length < 43 || length > 128) {
    throw new InvalidRequest(`a code_verifier has 43 to 128 characters (RFC 7636 §4.1); ${length} was asked for`);
  }
  const verifier = randomBytes(Math.ceil((length * 3) / 4)).toString('base64url').slice(0, length);
  return { verifier, challenge: s256Challenge(verifier), method: 'S256' };
}
