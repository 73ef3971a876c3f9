export {
  OAuthClient,
  type ClientOptions,
  type ClientRegistration,
  type ExchangeOptions,
  type Introspection,
  type Limit,
  type PurgeOptions,
  type RateLimitOptions,
  type RotateOptions,
  type RotateResult,
  type Target,
  type ThrottleOptions,
} from './client';
export {
  RECORD_KINDS,
  type Census,
  type KindCounts,
  type ListedRecord,
  type RecordKind,
  type ScanOptions,
  type ScanPage,
} from './admin';
export { Exists, InvalidGrant, InvalidRequest, InvalidScope, NoPerm, OAuthError, ServerError, WrongType } from './errors';
export { GrantKeys, Keys, randomId, sha256Hex } from './keys';
export { assertPkceSyntax, createPkcePair, s256Challenge, type PkcePair } from './pkce';
export { RateLimitAllResult, RateLimitResult } from './ratelimit';
export type { Fields } from './replies';
export { hashedPart, slotOf } from './slot';
export type { IoredisClient, IoredisCluster, NodeRedisClient, NodeRedisCluster, Primary, Route, Transport } from './transport';
