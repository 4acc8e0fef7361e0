/* The few Lua C API calls that differ between Lua 5.1/LuaJIT and Lua 5.4. */
#ifndef THINKIFIC_COMPAT_H
#define THINKIFIC_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#ifndef LUA_OK
#define LUA_OK 0
#endif
#define lua_rawlen(L, i) lua_objlen((L), (i))
#define lua_absindex(L, i) \
  (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#ifndef luaL_newlib /* PUC Lua 5.1; LuaJIT 2.1 has these three */
#define luaL_setfuncs(L, l, n) tk_setfuncs((L), (l), (n))
#define luaL_setmetatable(L, tname) (luaL_getmetatable((L), (tname)), lua_setmetatable((L), -2))
#define luaL_newlib(L, l) (lua_newtable(L), luaL_setfuncs((L), (l), 0))
static inline void tk_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name != NULL; l++) {
    int i;
    for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#endif
#endif

#if LUA_VERSION_NUM < 503
#define lua_isinteger(L, i) 0
#define TK_HAS_INTEGERS 0
#else
#define TK_HAS_INTEGERS 1
#endif

#if LUA_VERSION_NUM < 504
#define lua_newuserdatauv(L, size, nuv) lua_newuserdata((L), (size))
#define luaL_pushfail(L) lua_pushnil(L)
/* One user value: a table, kept as the userdata's environment (5.1) or user value (5.2/5.3). */
#if LUA_VERSION_NUM < 502
#define tk_setuservalue(L, i) lua_setfenv((L), (i))
#define tk_getuservalue(L, i) lua_getfenv((L), (i))
#else
#define tk_setuservalue(L, i) lua_setuservalue((L), (i))
#define tk_getuservalue(L, i) lua_getuservalue((L), (i))
#endif
#else
#define tk_setuservalue(L, i) lua_setiuservalue((L), (i), 1)
#define tk_getuservalue(L, i) lua_getiuservalue((L), (i), 1)
#endif

/* Pushes an integer: of the integer subtype where Lua has one, else a float. */
static inline void tk_push_integer(lua_State *L, long long n) {
#if TK_HAS_INTEGERS
  lua_pushinteger(L, (lua_Integer)n);
#else
  lua_pushnumber(L, (lua_Number)n);
#endif
}

#endif
