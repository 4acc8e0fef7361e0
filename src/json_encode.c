/* Lua to JSON, written here rather than through lua-cjson 2.1.0, which prints integers of 15+
 * digits in exponent form. Integers (and integral floats within +-2^53, tk_integral) are written
 * exactly.
 * The output grows in a Lua userdata at a fixed stack slot, so a Lua error (out of memory)
 * can never leak it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core.h"

typedef struct {
  lua_State *L;
  int slot;      /* stack index of the userdata holding the bytes */
  char *data;
  size_t len, cap;
  const char *err; /* first failure, a static message */
} Out;

static void out_reserve(Out *o, size_t more) {
  char *bigger;
  size_t cap = o->cap;
  if (o->len + more <= o->cap) return;
  while (cap < o->len + more) cap *= 2;
  bigger = (char *)lua_newuserdatauv(o->L, cap, 0);
  memcpy(bigger, o->data, o->len);
  lua_replace(o->L, o->slot);
  o->data = bigger;
  o->cap = cap;
}

static void out_add(Out *o, const char *s, size_t n) {
  out_reserve(o, n);
  memcpy(o->data + o->len, s, n);
  o->len += n;
}

static void out_char(Out *o, char c) {
  out_reserve(o, 1);
  o->data[o->len++] = c;
}

static void encode_string(Out *o, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  size_t i, run = 0;
  out_reserve(o, n + 2);
  out_char(o, '"');
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    const char *esc = NULL;
    char u[6];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    switch (c) {
      case '"': esc = "\\\""; break;
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      case '\b': esc = "\\b"; break;
      case '\f': esc = "\\f"; break;
      default:
        memcpy(u, "\\u00", 4);
        u[4] = hex[c >> 4];
        u[5] = hex[c & 15];
        break;
    }
    out_add(o, s + run, i - run);
    if (esc)
      out_add(o, esc, strlen(esc));
    else
      out_add(o, u, 6);
    run = i + 1;
  }
  out_add(o, s + run, n - run);
  out_char(o, '"');
}

static void encode_number(Out *o, int idx) {
  char num[40];
  int n;
#if TK_HAS_INTEGERS
  if (lua_isinteger(o->L, idx)) {
    n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(o->L, idx));
    out_add(o, num, (size_t)n);
    return;
  }
#endif
  {
    double d = (double)lua_tonumber(o->L, idx);
    int prec;
    if (isnan(d) || isinf(d)) {
      o->err = "cannot encode NaN or infinity as JSON";
      return;
    }
    if (tk_integral(d)) {
      n = snprintf(num, sizeof num, "%.0f", d);
      out_add(o, num, (size_t)n);
      return;
    }
    /* The shortest form that reads back as the same double. */
    for (prec = 15; prec <= 17; prec++) {
      n = snprintf(num, sizeof num, "%.*g", prec, d);
      if (strtod(num, NULL) == d) break;
    }
    out_add(o, num, (size_t)n);
  }
}

static void encode_value(Out *o, int idx, int depth);

/* 1: an array, its keys exactly 1..n; 0: an object, its keys all strings (or an empty table
 * not marked as an array); -1: neither (mixed keys, holes, a marked table with other keys).
 * Decided from the keys themselves: lua_rawlen (#) of a table with holes is any of its
 * borders, so {nil, 2, 3, 4, [100] = 5} may have 4 and 4 keys. */
static int table_shape(lua_State *L, int idx, size_t *n) {
  size_t count = 0, strings = 0, indices = 0;
  lua_Number max = 0;
  int marked = 0;
  if (lua_getmetatable(L, idx)) {
    luaL_getmetatable(L, TK_ARRAY_MT);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    count++;
    if (lua_type(L, -2) == LUA_TSTRING) {
      strings++;
    } else if (lua_type(L, -2) == LUA_TNUMBER) {
      lua_Number k = lua_tonumber(L, -2);
      if (k >= 1 && k == floor(k)) {
        indices++;
        if (k > max) max = k;
      }
    }
    lua_pop(L, 1);
  }
  *n = count;
  /* count distinct keys, each an integer from 1 to max, and max == count: exactly 1..count */
  if (indices == count && max == (lua_Number)count && (count > 0 || marked)) return 1;
  if (strings == count && !marked) return 0;
  return -1;
}

static void encode_table(Out *o, int idx, int depth) {
  lua_State *L = o->L;
  size_t n;
  int shape, first = 1;
  if (depth >= TK_MAX_DEPTH) { /* depth 0 is the first level: decode's limit, the same */
    o->err = "cannot encode tables nested deeper than " TK_STRING(TK_MAX_DEPTH) " levels (or a cycle)";
    return;
  }
  luaL_checkstack(L, 6, "JSON nesting");
  shape = table_shape(L, idx, &n);
  if (shape < 0) {
    o->err = "cannot encode a table with mixed or non-string keys, or a sparse array";
    return;
  }
  if (shape == 1) {
    size_t i;
    out_char(o, '[');
    for (i = 1; i <= n && !o->err; i++) {
      if (i > 1) out_char(o, ',');
      lua_rawgeti(L, idx, (lua_Integer)i);
      encode_value(o, lua_gettop(L), depth + 1);
      lua_pop(L, 1);
    }
    out_char(o, ']');
    return;
  }
  out_char(o, '{');
  lua_pushnil(L);
  while (!o->err && lua_next(L, idx)) {
    size_t klen;
    const char *k = lua_tolstring(L, -2, &klen); /* keys are strings here: no conversion */
    if (!first) out_char(o, ',');
    first = 0;
    encode_string(o, k, klen);
    out_char(o, ':');
    encode_value(o, lua_gettop(L), depth + 1);
    lua_pop(L, 1);
  }
  if (o->err) lua_pop(L, 1); /* the key left by the interrupted traversal */
  out_char(o, '}');
}

static void encode_value(Out *o, int idx, int depth) {
  lua_State *L = o->L;
  switch (lua_type(L, idx)) {
    case LUA_TNIL:
      out_add(o, "null", 4);
      break;
    case LUA_TBOOLEAN:
      if (lua_toboolean(L, idx))
        out_add(o, "true", 4);
      else
        out_add(o, "false", 5);
      break;
    case LUA_TNUMBER:
      encode_number(o, idx);
      break;
    case LUA_TSTRING: {
      size_t n;
      const char *s = lua_tolstring(L, idx, &n);
      encode_string(o, s, n);
      break;
    }
    case LUA_TTABLE:
      encode_table(o, idx, depth);
      break;
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { /* cjson.null */
        out_add(o, "null", 4);
        break;
      }
      /* fall through */
    default:
      o->err = "cannot encode a value of this type as JSON (function, userdata or thread)";
      break;
  }
}

int tk_json_encode(lua_State *L, int idx) {
  Out o;
  idx = lua_absindex(L, idx);
  o.L = L;
  o.cap = 256;
  o.len = 0;
  o.err = NULL;
  o.data = (char *)lua_newuserdatauv(L, o.cap, 0);
  o.slot = lua_gettop(L);
  encode_value(&o, idx, 0);
  if (o.err) {
    lua_pop(L, 1);
    lua_pushstring(L, o.err);
    return 0;
  }
  lua_pushlstring(L, o.data, o.len);
  lua_replace(L, o.slot);
  return 1;
}

/* core.encode(value) -> text | nil, err (kind "encode") */
static int l_encode(lua_State *L) {
  luaL_checkany(L, 1);
  if (tk_json_encode(L, 1)) return 1;
  {
    const char *why = lua_tostring(L, -1);
    luaL_pushfail(L);
    tk_push_error(L, "encode", why);
  }
  return 2;
}

/* core.array(t): marks t as a JSON array, so that an empty t encodes as [] */
static int l_array(lua_State *L) {
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_getmetatable(L, TK_ARRAY_MT);
  lua_setmetatable(L, 1);
  return 1;
}

void tk_json_encode_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"encode", l_encode}, {"array", l_array}, {NULL, NULL}};
  if (luaL_newmetatable(L, TK_ARRAY_MT)) {
    lua_pushliteral(L, "thinkific.array");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
