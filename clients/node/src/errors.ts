/**
 * Error replies of the module as classes. Each carries the OAuth 2.0 `error` code and
 * the HTTP status that a token endpoint should answer (RFC 6749 §5.2).
 */

export class OAuthError extends Error {
  /** The reply's code word: `INVALID_GRANT`, ..., or Redis's own (`ERR`, `CROSSSLOT`, `NOPERM`, ...). */
  readonly code: string;
  /** The OAuth 2.0 error code for the response body (`invalid_grant`, ...). */
  readonly error: string;
  /** The HTTP status for the response. */
  readonly httpStatus: number;
  /** The reply's sentence, without the code word. Never contains a code, verifier, token or secret. */
  readonly description: string;

  constructor(code: string, error: string, httpStatus: number, description: string, options?: ErrorOptions) {
    super(`${code} ${description}`, options);
    this.name = new.target.name;
    this.code = code;
    this.error = error;
    this.httpStatus = httpStatus;
    this.description = description;
  }
}

/** A code, client, redirect URI or PKCE check failed, or a refresh token is unknown, cut off or reused. */
export class InvalidGrant extends OAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('INVALID_GRANT', 'invalid_grant', 400, description, options);
  }
}

/** A malformed argument. */
export class InvalidRequest extends OAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('INVALID_REQUEST', 'invalid_request', 400, description, options);
  }
}

/** A refresh asked for a scope wider than the refresh token's. */
export class InvalidScope extends OAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('INVALID_SCOPE', 'invalid_scope', 400, description, options);
  }
}

/** A record to create already exists (a key collision: a bug of the caller, not of the client). */
export class Exists extends OAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('EXISTS', 'server_error', 500, description, options);
  }
}

/** A key holds another type or another kind of record. */
export class WrongType extends OAuthError {
  constructor(description: string, options?: ErrorOptions) {
    super('WRONGTYPE', 'server_error', 500, description, options);
  }
}

/** Any other error reply: the module's internal error, arity, ACL, `OOM`, `CROSSSLOT`, ... */
export class ServerError extends OAuthError {
  constructor(code: string, description: string, options?: ErrorOptions) {
    super(code, 'server_error', 500, description, options);
  }
}

/**
 * The caller's ACL user may not do this: Redis's own refusal of a command or key, or
 * the module's (OAUTH.PURGECLIENT found a key of the client that the user may read but
 * not delete, and deleted nothing). A `ServerError` with code `NOPERM`.
 */
export class NoPerm extends ServerError {
  constructor(description: string, options?: ErrorOptions) {
    super('NOPERM', description, options);
  }
}

const byCode = new Map<string, new (description: string, options?: ErrorOptions) => OAuthError>([
  ['INVALID_GRANT', InvalidGrant],
  ['INVALID_REQUEST', InvalidRequest],
  ['INVALID_SCOPE', InvalidScope],
  ['EXISTS', Exists],
  ['WRONGTYPE', WrongType],
  ['NOPERM', NoPerm],
]);

/** Whether `err` is an error reply of node-redis (`ErrorReply`) or ioredis (`ReplyError`). */
export function isReplyError(err: unknown): err is Error {
  for (let proto = err instanceof Error ? Object.getPrototypeOf(err) : null; proto; proto = Object.getPrototypeOf(proto)) {
    const name: unknown = proto.constructor?.name;
    if (name === 'ErrorReply' || name === 'ReplyError') return true;
  }
  return false;
}

/** The `OAuthError` for an error reply. */
export function fromReply(err: Error): OAuthError {
  const space = err.message.indexOf(' ');
  const code = space < 0 ? err.message : err.message.slice(0, space);
  const description = space < 0 ? '' : err.message.slice(space + 1);
  const Class = byCode.get(code);
  return Class ? new Class(description, { cause: err }) : new ServerError(code, description, { cause: err });
}
