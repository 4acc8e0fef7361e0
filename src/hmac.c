/* Webhook signatures: lowercase hex HMAC-SHA256 of the raw body, and a constant-time check
 * against one or several secrets. OpenSSL 3's one-shot HMAC() looks up the algorithms and
 * keys a new context on every call, which costs twice the hashing of a typical delivery; so
 * each Lua state keeps a keyed EVP_MAC context per secret (a bounded few) and re-initialises
 * it with the same key for each body. HMAC() remains the fallback. */
#include <limits.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "core.h"

#define DIGEST_LEN 32
#define MAX_CACHED_KEYS 64
#define KEYS_KEY "thinkific.hmac_keys" /* registry: secret -> keyed context box, nothing else */
#define MAC_KEY "thinkific.hmac_mac"   /* registry: the fetched HMAC algorithm box */

/* The count of cached keys lives here, apart from the keys: any string may be a secret. */
typedef struct {
  EVP_MAC *mac;
  int cached;
} mac_box;

typedef struct {
  EVP_MAC_CTX *ctx;
} ctx_box;

static int mac_gc(lua_State *L) {
  mac_box *b = (mac_box *)lua_touserdata(L, 1);
  EVP_MAC_free(b->mac);
  b->mac = NULL;
  return 0;
}

static int ctx_gc(lua_State *L) {
  ctx_box *b = (ctx_box *)lua_touserdata(L, 1);
  EVP_MAC_CTX_free(b->ctx);
  b->ctx = NULL;
  return 0;
}

/* A context keyed with the secret at stack index key, or NULL (then HMAC() is used). */
static EVP_MAC_CTX *keyed_context(lua_State *L, int key) {
  EVP_MAC_CTX *ctx = NULL;
  int top = lua_gettop(L), keys;
  lua_getfield(L, LUA_REGISTRYINDEX, KEYS_KEY);
  keys = lua_gettop(L);
  lua_pushvalue(L, key);
  lua_rawget(L, keys);
  if (lua_type(L, -1) == LUA_TUSERDATA) {
    ctx = ((ctx_box *)lua_touserdata(L, -1))->ctx;
  } else {
    mac_box *m;
    lua_getfield(L, LUA_REGISTRYINDEX, MAC_KEY);
    m = (mac_box *)lua_touserdata(L, -1);
    if (m && m->mac && m->cached < MAX_CACHED_KEYS) {
      size_t klen;
      const char *k = lua_tolstring(L, key, &klen);
      ctx_box *b;
      OSSL_PARAM params[2];
      /* The box first, so that a Lua error can never leak the context. */
      b = (ctx_box *)lua_newuserdatauv(L, sizeof *b, 0);
      b->ctx = NULL;
      lua_newtable(L);
      lua_pushcfunction(L, ctx_gc);
      lua_setfield(L, -2, "__gc");
      lua_setmetatable(L, -2);
      b->ctx = EVP_MAC_CTX_new(m->mac);
      params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
      params[1] = OSSL_PARAM_construct_end();
      if (b->ctx && EVP_MAC_init(b->ctx, (const unsigned char *)k, klen, params)) {
        ctx = b->ctx;
        lua_pushvalue(L, key);
        lua_pushvalue(L, -2);
        lua_rawset(L, keys); /* keys[secret] = box */
        m->cached++;
      }
    }
  }
  lua_settop(L, top); /* a box not kept in the table is left to the GC */
  return ctx;
}

/* HMAC-SHA256 of body with the secret at stack index key. */
static int digest(lua_State *L, int key, const char *body, size_t blen,
                  unsigned char out[DIGEST_LEN]) {
  size_t klen, n = 0;
  const char *k = lua_tolstring(L, key, &klen);
  EVP_MAC_CTX *ctx = keyed_context(L, key);
  if (ctx && EVP_MAC_init(ctx, NULL, 0, NULL) &&
      EVP_MAC_update(ctx, (const unsigned char *)body, blen) &&
      EVP_MAC_final(ctx, out, &n, DIGEST_LEN) && n == DIGEST_LEN)
    return 1;
  if (klen > INT_MAX) return 0; /* before the cast HMAC() needs */
  {
    unsigned int len = 0;
    return HMAC(EVP_sha256(), k, (int)klen, (const unsigned char *)body, blen, out, &len) !=
               NULL && len == DIGEST_LEN;
  }
}

static const char *check_secret(lua_State *L, int idx, int arg, size_t *len) {
  const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, len) : NULL;
  if (s == NULL || *len == 0)
    luaL_argerror(L, arg, "secret must be a non-empty string (or a list of them)");
  return s;
}

/* core.sign(body, secret) -> 64 lowercase hex digits */
static int l_sign(lua_State *L) {
  static const char hex[] = "0123456789abcdef";
  size_t blen, klen;
  const char *body = luaL_checklstring(L, 1, &blen);
  unsigned char mac[DIGEST_LEN];
  char out[DIGEST_LEN * 2];
  int i;
  check_secret(L, 2, 2, &klen);
  if (!digest(L, 2, body, blen, mac)) return luaL_error(L, "HMAC-SHA256 failed (OpenSSL)");
  for (i = 0; i < DIGEST_LEN; i++) {
    out[2 * i] = hex[mac[i] >> 4];
    out[2 * i + 1] = hex[mac[i] & 15];
  }
  lua_pushlstring(L, out, sizeof out);
  return 1;
}

static int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* 64 hex digits, any case, to 32 bytes; 0 for anything else. */
static int parse_signature(const char *sig, size_t len, unsigned char out[DIGEST_LEN]) {
  size_t i;
  if (len != DIGEST_LEN * 2) return 0;
  for (i = 0; i < DIGEST_LEN; i++) {
    int hi = hex_value(sig[2 * i]), lo = hex_value(sig[2 * i + 1]);
    if (hi < 0 || lo < 0) return 0;
    out[i] = (unsigned char)(hi << 4 | lo);
  }
  return 1;
}

/* Compares with every secret (no early exit), in constant time for each. */
static int matches(lua_State *L, int idx, int arg, const char *body, size_t blen,
                   const unsigned char want[DIGEST_LEN]) {
  unsigned char mac[DIGEST_LEN];
  size_t klen;
  check_secret(L, idx, arg, &klen);
  if (!digest(L, lua_absindex(L, idx), body, blen, mac))
    luaL_error(L, "HMAC-SHA256 failed (OpenSSL)");
  return CRYPTO_memcmp(mac, want, DIGEST_LEN) == 0;
}

/* core.verify(body, signature, secret_or_list) -> boolean */
static int l_verify(lua_State *L) {
  size_t blen, slen;
  const char *body = luaL_checklstring(L, 1, &blen);
  const char *sig = lua_type(L, 2) == LUA_TSTRING ? lua_tolstring(L, 2, &slen) : NULL;
  unsigned char want[DIGEST_LEN];
  int ok = 0, valid;
  if (sig == NULL && !lua_isnil(L, 2)) luaL_argerror(L, 2, "signature must be a string or nil");
  if (lua_type(L, 3) != LUA_TTABLE && lua_type(L, 3) != LUA_TSTRING)
    luaL_argerror(L, 3, "secret must be a non-empty string (or a list of them)");
  valid = sig != NULL && parse_signature(sig, slen, want);
  if (lua_type(L, 3) == LUA_TTABLE) {
    int i, n = (int)lua_rawlen(L, 3);
    if (n == 0) luaL_argerror(L, 3, "the list of secrets is empty");
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, 3, i);
      if (valid) ok |= matches(L, -1, 3, body, blen, want);
      else check_secret(L, -1, 3, &slen);
      lua_pop(L, 1);
    }
  } else {
    if (valid) ok = matches(L, 3, 3, body, blen, want);
    else check_secret(L, 3, 3, &slen);
  }
  lua_pushboolean(L, ok);
  return 1;
}

void tk_hmac_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"sign", l_sign}, {"verify", l_verify}, {NULL, NULL}};
  mac_box *m = (mac_box *)lua_newuserdatauv(L, sizeof *m, 0);
  m->mac = NULL;
  m->cached = 0;
  lua_newtable(L);
  lua_pushcfunction(L, mac_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL); /* NULL: every digest goes through HMAC() */
  lua_setfield(L, LUA_REGISTRYINDEX, MAC_KEY);
  lua_newtable(L);
  lua_setfield(L, LUA_REGISTRYINDEX, KEYS_KEY);
  luaL_setfuncs(L, fns, 0);
}
