/* JSON to Lua through lua-cjson, then the number rule of API.md applied here in C:
 * every float with an integral value strictly within +-2^53 becomes a Lua integer (2^53 is
 * where floats stop being exact: 9007199254740993 arrives as 2^53 and must stay a float). lua-cjson 2.1.0
 * decodes every number as a float under Lua 5.3+, so "5000", "5000.0" and "5e3" all
 * arrive as 5000.0 and all leave as the integer 5000. A number beyond a double's range, which
 * cjson reads as infinity, is refused. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core.h"

/* Where the registry keeps our private cjson instance's decode function. */
#define DECODE_KEY "thinkific.cjson_decode"

#if TK_HAS_INTEGERS
/* tk_integral, but for +-2^53 itself, which 2^53 + 1 rounds to on its way through a double. */
static int integral(lua_Number n) {
  return tk_integral(n) && fabs(n) < TK_MAX_EXACT;
}
#endif

enum { BEYOND_RANGE, KEPT, REPLACED };

/* The number at the top of the stack, as API.md has it: BEYOND_RANGE (left as it is) for a
 * number beyond a double's range (cjson reads 1e400 as infinity, which JSON has no word for and
 * encode refuses); under Lua 5.3+ an integral float within +-2^53 REPLACED by the integer. */
static int number_rule(lua_State *L) {
  lua_Number n = lua_tonumber(L, -1);
  if (!isfinite(n)) return BEYOND_RANGE;
#if TK_HAS_INTEGERS
  if (!lua_isinteger(L, -1) && integral(n)) {
    lua_pop(L, 1);
    lua_pushinteger(L, (lua_Integer)n);
    return REPLACED;
  }
#endif
  return KEPT;
}

/* Applies number_rule to every number of the table at idx (absolute) and of every nested table;
 * 0 at the first number beyond range. cjson has already refused nesting deeper than
 * TK_MAX_DEPTH, so recursion is bounded. */
static int numbers_in(lua_State *L, int idx) {
  luaL_checkstack(L, 4, "JSON nesting");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    int t = lua_type(L, -1);
    if (t == LUA_TNUMBER) {
      int rule = number_rule(L);
      if (rule == BEYOND_RANGE) {
        lua_pop(L, 2);
        return 0;
      }
      if (rule == REPLACED) { /* assigning to an existing field during lua_next is allowed */
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, idx);
        continue;
      }
    }
    if (t == LUA_TTABLE && !numbers_in(L, lua_gettop(L))) {
      lua_pop(L, 2);
      return 0;
    }
    lua_pop(L, 1);
  }
  return 1;
}

int tk_json_decode(lua_State *L, int idx) {
  size_t len;
  const char *text, *nul;
  idx = lua_absindex(L, idx);
  lua_getfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pushvalue(L, idx); /* the same string: no copy */
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    if (!lua_isstring(L, -1)) {
      lua_pop(L, 1);
      lua_pushliteral(L, "invalid JSON");
    }
    return 0;
  }
  /* cjson takes a NUL byte for the end of the text: what follows one was never read. A NUL
   * is never valid JSON (in a string it must be escaped), so a value that ended before one
   * ended before the end of the text, as in '{"a":1}\0xyz'. */
  text = lua_tolstring(L, idx, &len);
  nul = (const char *)memchr(text, '\0', len);
  if (nul) {
    char msg[80]; /* not %d: a text over 2 GiB would not fit an int */
    snprintf(msg, sizeof msg, "Expected the end but found a NUL byte at character %lu",
             (unsigned long)(nul - text) + 1);
    lua_pop(L, 1);
    lua_pushstring(L, msg);
    return 0;
  }
  if (lua_type(L, -1) == LUA_TTABLE
          ? !numbers_in(L, lua_gettop(L))
          : lua_type(L, -1) == LUA_TNUMBER && number_rule(L) == BEYOND_RANGE) {
    lua_pop(L, 1);
    lua_pushliteral(L, "a number beyond the range of a double (JSON has no infinity)");
    return 0;
  }
  return 1;
}

/* core.decode(text) -> value | nil, err (kind "decode") */
static int l_decode(lua_State *L) {
  luaL_checktype(L, 1, LUA_TSTRING);
  if (tk_json_decode(L, 1)) return 1;
  {
    const char *why = lua_tostring(L, -1);
    luaL_pushfail(L);
    tk_push_error(L, "decode", why);
  }
  return 2;
}

/* Calls cjson_instance[name](arg) for configuration. */
static void configure(lua_State *L, int inst, const char *name, int arg) {
  lua_getfield(L, inst, name);
  if (arg < 0)
    lua_pushboolean(L, 0);
  else
    lua_pushinteger(L, arg);
  lua_call(L, 1, 0);
}

void tk_json_decode_open(lua_State *L) {
  int inst;
  /* A private cjson instance, so other users' cjson settings never change ours. */
  lua_getglobal(L, "require");
  lua_pushliteral(L, "cjson");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "null");
  lua_setfield(L, -3, "null");
  lua_getfield(L, -1, "new");
  lua_call(L, 0, 1);
  inst = lua_gettop(L);
  configure(L, inst, "decode_invalid_numbers", -1); /* no NaN, Infinity, hex */
  configure(L, inst, "decode_max_depth", TK_MAX_DEPTH);
  lua_getfield(L, inst, "decode");
  lua_setfield(L, LUA_REGISTRYINDEX, DECODE_KEY);
  lua_pop(L, 2);
  lua_pushcfunction(L, l_decode);
  lua_setfield(L, -2, "decode");
}
