import { createHmac } from 'node:crypto';
import { Keys, OAuthClient, OAuthError } from 'redis-oauth';

export interface TokenResponse {
  status: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
}

const keys = new Keys();
const ACCESS_TTL = 3600;
const REFRESH_TTL = 30 * 86400;

/**
 * The successor of a presented refresh token, derived with a server key: a client
 * that retries a lost refresh response within the grace window is answered the same
 * token strings (OAUTH.ROTATE answers the successor's keys, the SHA-256 of these).
 */
function successor(refreshToken: string, use: 'at' | 'rt', serverKey: Buffer): string {
  const handle = refreshToken.slice(0, refreshToken.lastIndexOf('.'));
  return `${handle}.${createHmac('sha256', serverKey).update(`${use}:${refreshToken}`).digest('base64url')}`;
}

/** POST /token (RFC 6749 §4.1.3, §6) with client_secret_post authentication. */
export async function tokenEndpoint(
  oauth: OAuthClient,
  form: Record<string, string | undefined>,
  clientIp: string,
  serverKey: Buffer,
): Promise<TokenResponse> {
  const headers: Record<string, string> = { 'Cache-Control': 'no-store' };
  const answer = (status: number, body: Record<string, unknown>): TokenResponse => ({ status, body, headers });

  const rate = await oauth.rateLimit(`rl:token:${clientIp}`, { limit: 20, window: 60 });
  Object.assign(headers, rate.headers());
  if (rate.limited) return answer(429, { error: 'invalid_request', error_description: 'too many requests' });

  const { client_id: clientId = '', client_secret: secret = '', grant_type: grantType } = form;
  if (!(await oauth.verifyClient(keys.client(clientId), secret))) return answer(401, { error: 'invalid_client' });

  if (grantType !== 'authorization_code' && grantType !== 'refresh_token') return answer(400, { error: 'unsupported_grant_type' });
  const presented = grantType === 'authorization_code' ? form.code : form.refresh_token;
  if (presented === undefined) return answer(400, { error: 'invalid_request', error_description: `${grantType === 'authorization_code' ? 'code' : 'refresh_token'} is missing` });
  const grant = keys.fromToken(presented);
  if (grant === undefined) return answer(400, { error: 'invalid_grant' });

  try {
    if (grantType === 'authorization_code') {
      const accessToken = grant.newToken();
      const refreshToken = grant.newToken();
      const fields = await oauth.exchange({
        key: grant.code(presented),
        clientId,
        redirectUri: form.redirect_uri ?? '',
        codeVerifier: form.code_verifier ?? '',
        issue: { key: grant.accessToken(accessToken), ttl: ACCESS_TTL },
        refresh: { key: grant.refreshToken(refreshToken), ttl: REFRESH_TTL },
        grant: grant.grant,
      });
      return answer(200, { access_token: accessToken, token_type: 'Bearer', expires_in: ACCESS_TTL, refresh_token: refreshToken, scope: fields.scope });
    }

    const accessToken = successor(presented, 'at', serverKey);
    const refreshToken = successor(presented, 'rt', serverKey);
    const rotated = await oauth.rotate({
      oldKey: grant.refreshToken(presented),
      newKey: grant.refreshToken(refreshToken),
      ttl: REFRESH_TTL,
      issue: { key: grant.accessToken(accessToken), ttl: ACCESS_TTL },
      grace: 30,
      cutoff: grant.cutoffs,
      fields: form.scope === undefined ? undefined : { scope: form.scope },
    });
    if (rotated.fields.client_id !== clientId) {
      // Presented by another client than its own (RFC 6749 §6): treat it as stolen.
      await oauth.revokeGrant(grant.grant);
      return answer(400, { error: 'invalid_grant' });
    }
    return answer(200, { access_token: accessToken, token_type: 'Bearer', expires_in: ACCESS_TTL, refresh_token: refreshToken, scope: rotated.fields.scope });
  } catch (err) {
    if (!(err instanceof OAuthError)) throw err;
    return answer(err.httpStatus, err.httpStatus < 500 ? { error: err.error, error_description: err.description } : { error: err.error });
  }
}
