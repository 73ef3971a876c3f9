/** The five-integer reply of OAUTH.RATELIMIT, OAUTH.RATELIMITALL and OAUTH.THROTTLE. */
export class RateLimitResult {
  /** Whether the request was refused (and not counted). */
  readonly limited: boolean;
  /** The limit in force (THROTTLE: `maxBurst + 1`; RATELIMITALL: the deciding limit's). */
  readonly limit: number;
  /** Units still available, after this request if it was allowed. */
  readonly remaining: number;
  /** Seconds until the same request would be allowed; -1 when allowed, or when it can never be (cost above the limit). */
  readonly retryAfter: number;
  /** Seconds until the state no longer limits anything. */
  readonly resetAfter: number;

  constructor([limited, limit, remaining, retryAfter, resetAfter]: readonly number[]) {
    this.limited = limited === 1;
    this.limit = limit;
    this.remaining = remaining;
    this.retryAfter = retryAfter;
    this.resetAfter = resetAfter;
  }

  /**
   * Response headers as docs/commands/oauth.ratelimit.md maps them: `RateLimit-Limit`,
   * `RateLimit-Remaining`, `RateLimit-Reset`, and `Retry-After` only when the request
   * was refused and a retry can succeed (answer 429 then).
   */
  headers(): Record<string, string> {
    const headers: Record<string, string> = {
      'RateLimit-Limit': String(this.limit),
      'RateLimit-Remaining': String(this.remaining),
      'RateLimit-Reset': String(this.resetAfter),
    };
    if (this.limited && this.retryAfter !== -1) headers['Retry-After'] = String(this.retryAfter);
    return headers;
  }
}

/** OAUTH.RATELIMITALL's reply: the request as a whole, and which limit decided. */
export class RateLimitAllResult extends RateLimitResult {
  /** Index (0-based) in the `limits` argument of the first limit that refused, else of the one with the fewest units left. */
  readonly decidingIndex: number;
  /** The deciding limit's key, as given (without the client's prefix). */
  readonly decidingKey: string;

  constructor(reply: readonly number[], keys: readonly string[]) {
    super(reply);
    this.decidingIndex = reply[5] - 1;
    this.decidingKey = keys[this.decidingIndex];
  }
}
