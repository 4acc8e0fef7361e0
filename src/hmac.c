/* Webhook signatures: lowercase hex HMAC-SHA256 of the raw body (OpenSSL's one-shot HMAC,
 * which OpenSSL 3 keeps), and a constant-time check against one or several secrets. */
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include "core.h"

#define DIGEST_LEN 32

static int digest(const char *key, size_t klen, const char *body, size_t blen,
                  unsigned char out[DIGEST_LEN]) {
  unsigned int n = 0;
  return HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)body, blen, out, &n) != NULL &&
         n == DIGEST_LEN;
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
  const char *key = check_secret(L, 2, 2, &klen);
  unsigned char mac[DIGEST_LEN];
  char out[DIGEST_LEN * 2];
  int i;
  if (!digest(key, klen, body, blen, mac)) return luaL_error(L, "HMAC-SHA256 failed (OpenSSL)");
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
  const char *key = check_secret(L, idx, arg, &klen);
  if (!digest(key, klen, body, blen, mac)) luaL_error(L, "HMAC-SHA256 failed (OpenSSL)");
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
  luaL_setfuncs(L, fns, 0);
}
