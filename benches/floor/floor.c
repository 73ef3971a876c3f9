/* The floor of a fixed-window rate limiter on this server's module API:
 * a bench-only module (issue 17), loaded next to redis-oauth by
 * benches/throughput/limits.rs, never shipped. FLOOR.FIXED key limit window does
 * only the work no limiter can skip: open the key, read the count and its
 * expiry, write count + 1 in place with the window's absolute expiry,
 * replicate `SET key n PXAT t`, raise `set` and `expire`, answer
 * [limited, limit, remaining, retry_after, reset_after]. No checks
 * beyond what keeps the server safe, no journal, C instead of Rust: what
 * OAUTH.RATELIMIT costs above this is the module's own overhead. */
#define REDISMODULE_MAIN
#include "redismodule.h"
#include <string.h>

static RedisModuleString *PXAT;

static size_t decimal(long long n, char *buf) { /* buf: 21 bytes */
    char tmp[21];
    unsigned long long v = n < 0 ? 0ULL - (unsigned long long)n : (unsigned long long)n;
    size_t i = sizeof(tmp), len;
    do { tmp[--i] = (char)('0' + v % 10); v /= 10; } while (v);
    if (n < 0) tmp[--i] = '-';
    len = sizeof(tmp) - i;
    memcpy(buf, tmp + i, len);
    return len;
}

static int FloorFixed(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    long long limit, window, count = 0, now, at;
    char vbuf[21], abuf[21];
    size_t vlen, alen, len;
    if (argc != 4) return RedisModule_WrongArity(ctx);
    if (RedisModule_StringToLongLong(argv[2], &limit) != REDISMODULE_OK ||
        RedisModule_StringToLongLong(argv[3], &window) != REDISMODULE_OK)
        return RedisModule_ReplyWithError(ctx, "ERR not an integer");
    now = RedisModule_Milliseconds();
    RedisModuleKey *k = RedisModule_OpenKey(ctx, argv[1], REDISMODULE_READ | REDISMODULE_WRITE);
    int type = RedisModule_KeyType(k);
    if (type != REDISMODULE_KEYTYPE_EMPTY && type != REDISMODULE_KEYTYPE_STRING) {
        RedisModule_CloseKey(k);
        return RedisModule_ReplyWithError(ctx, "WRONGTYPE");
    }
    mstime_t exp = -1;
    if (type == REDISMODULE_KEYTYPE_STRING) {
        const char *p = RedisModule_StringDMA(k, &len, REDISMODULE_READ);
        for (size_t i = 0; i < len && i < 19; i++) count = count * 10 + (p[i] - '0');
        exp = RedisModule_GetAbsExpire(k);
    }
    at = exp >= 0 ? exp : now + window * 1000;
    if (count + 1 > limit) { /* refused: nothing written */
        RedisModule_CloseKey(k);
        RedisModule_ReplyWithArray(ctx, 5);
        RedisModule_ReplyWithLongLong(ctx, 1);
        RedisModule_ReplyWithLongLong(ctx, limit);
        RedisModule_ReplyWithLongLong(ctx, 0);
        RedisModule_ReplyWithLongLong(ctx, (at - now + 999) / 1000);
        RedisModule_ReplyWithLongLong(ctx, (at - now + 999) / 1000);
        return REDISMODULE_OK;
    }
    count++;
    vlen = decimal(count, vbuf);
    alen = decimal(at, abuf);
    RedisModule_StringTruncate(k, vlen);
    char *w = RedisModule_StringDMA(k, &len, REDISMODULE_READ | REDISMODULE_WRITE);
    if (w && len == vlen) memcpy(w, vbuf, vlen);
    if (exp != at) RedisModule_SetAbsExpire(k, at);
    RedisModule_Replicate(ctx, "SET", "sbsb", argv[1], vbuf, vlen, PXAT, abuf, alen);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_STRING, "set", argv[1]);
    RedisModule_NotifyKeyspaceEvent(ctx, REDISMODULE_NOTIFY_GENERIC, "expire", argv[1]);
    RedisModule_CloseKey(k);
    RedisModule_ReplyWithArray(ctx, 5);
    RedisModule_ReplyWithLongLong(ctx, 0);
    RedisModule_ReplyWithLongLong(ctx, limit);
    RedisModule_ReplyWithLongLong(ctx, limit - count);
    RedisModule_ReplyWithLongLong(ctx, -1);
    RedisModule_ReplyWithLongLong(ctx, (at - now + 999) / 1000);
    return REDISMODULE_OK;
}

int RedisModule_OnLoad(RedisModuleCtx *ctx, RedisModuleString **argv, int argc) {
    (void)argv; (void)argc;
    if (RedisModule_Init(ctx, "floor", 1, REDISMODULE_APIVER_1) == REDISMODULE_ERR)
        return REDISMODULE_ERR;
    PXAT = RedisModule_CreateString(NULL, "PXAT", 4);
    if (RedisModule_CreateCommand(ctx, "floor.fixed", FloorFixed, "write deny-oom", 1, 1, 1) ==
        REDISMODULE_ERR)
        return REDISMODULE_ERR;
    return REDISMODULE_OK;
}
