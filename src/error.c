/* The error object: a plain table with the fields of API.md and a __tostring that reads them.
 * It never holds a credential: only kind, status, message, method, path and counts. */
#include <stdio.h>
#include <string.h>
#include "core.h"

void tk_push_error(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 8);
  tk_set_string(L, "kind", kind);
  tk_set_string(L, "message", message);
  luaL_getmetatable(L, TK_ERROR_MT);
  lua_setmetatable(L, -2);
}

/* Adds t[field] to the buffer when it is a string or number; returns whether it did. */
static int add_field(lua_State *L, luaL_Buffer *b, int t, const char *field, const char *prefix) {
  int ok;
  lua_getfield(L, t, field);
  ok = lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER;
  if (ok) {
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in t */
    luaL_addstring(b, prefix);
    luaL_addstring(b, s);
  } else {
    lua_pop(L, 1);
  }
  return ok;
}

/* "GET /webhooks/1: Record not found. (http 404, 4 attempts)" */
static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  int sent_false, attempts = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "sent");
  sent_false = lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1);
  lua_getfield(L, 1, "attempts");
  if (lua_type(L, -1) == LUA_TNUMBER) attempts = (int)lua_tonumber(L, -1);
  lua_pop(L, 2);
  luaL_buffinit(L, &b);
  if (add_field(L, &b, 1, "method", "")) {
    add_field(L, &b, 1, "path", " ");
    luaL_addstring(&b, ": ");
  }
  if (!add_field(L, &b, 1, "message", "")) luaL_addstring(&b, "error");
  luaL_addstring(&b, " (");
  if (!add_field(L, &b, 1, "kind", "")) luaL_addstring(&b, "error");
  add_field(L, &b, 1, "status", " ");
  if (sent_false) luaL_addstring(&b, ", not sent");
  if (attempts > 1) {
    char n[32];
    snprintf(n, sizeof n, ", %d attempts", attempts);
    luaL_addstring(&b, n);
  }
  luaL_addchar(&b, ')');
  luaL_pushresult(&b);
  return 1;
}

/* core.error(t): gives t the error metatable (for errors made in Lua). */
static int l_error(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  luaL_getmetatable(L, TK_ERROR_MT);
  lua_setmetatable(L, 1);
  return 1;
}

static int l_is_error(lua_State *L) {
  int is = 0;
  if (lua_getmetatable(L, 1)) {
    luaL_getmetatable(L, TK_ERROR_MT);
    is = lua_rawequal(L, -1, -2);
  }
  lua_pushboolean(L, is);
  return 1;
}

void tk_error_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"error", l_error}, {"is_error", l_is_error}, {NULL, NULL}};
  if (luaL_newmetatable(L, TK_ERROR_MT)) {
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "thinkific.Error");
    lua_setfield(L, -2, "__name");
  }
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
