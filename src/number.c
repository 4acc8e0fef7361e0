/* Integers and ids as text: which numbers stand for integers (the 2^53 rule, TK_MAX_EXACT in
 * core.h) and how an id is written, for the requests, the JSON writer and the JSON reader.
 * The same rule in Lua: lua/thinkific/integer.lua. */
#include <math.h>
#include <stdio.h>
#include "core.h"

int tk_integral(lua_Number n) {
  return n == floor(n) && fabs(n) <= TK_MAX_EXACT; /* NaN and infinity fail the first or second */
}

const char *tk_id_text(lua_State *L, int idx, char num[TK_ID_TEXT_SIZE], size_t *len) {
  int n;
  /* A string as it is; lua_tolstring would turn a number into a string in place. */
  if (lua_type(L, idx) == LUA_TSTRING) return lua_tolstring(L, idx, len);
  if (lua_type(L, idx) != LUA_TNUMBER) return NULL;
  /* Every digit: "%g" (and LuaJIT's tostring) would print 15+ digit numbers with an exponent. */
  if (lua_isinteger(L, idx))
    n = snprintf(num, TK_ID_TEXT_SIZE, "%lld", (long long)lua_tointeger(L, idx));
  else if (tk_integral(lua_tonumber(L, idx)))
    n = snprintf(num, TK_ID_TEXT_SIZE, "%.0f", (double)lua_tonumber(L, idx));
  else
    return NULL;
  *len = (size_t)n;
  return num;
}
