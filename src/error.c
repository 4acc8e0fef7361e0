/* The error object: a plain table with the fields of API.md and a __tostring that reads them.
 * It never holds a credential: only kind, status, message, method, path and counts. */
#include <limits.h>
#include <stdio.h>
#include "core.h"

void tk_push_error(lua_State *L, const char *kind, const char *message) {
  lua_createtable(L, 0, 8);
  tk_set_string(L, "kind", kind);
  tk_set_string(L, "message", message);
  luaL_getmetatable(L, TK_ERROR_MT);
  lua_setmetatable(L, -2);
}

/* The fields __tostring shows, read onto the stack in this order before the buffer starts. */
enum { METHOD = 2, PATH, MESSAGE, KIND, STATUS, SENT, ATTEMPTS };
static const char *const shown[] = {"method", "path", "message", "kind", "status", "sent",
                                    "attempts"};

static int has_text(lua_State *L, int i) {
  int t = lua_type(L, i);
  return t == LUA_TSTRING || t == LUA_TNUMBER;
}

/* Appends the field at stack index i by its length (a Lua string may hold a NUL): a string, or
 * a number converted in its stack slot, which keeps the text alive while the buffer grows (and
 * the collector runs); `otherwise` (when not NULL) for any other value. */
static void add_field(lua_State *L, luaL_Buffer *b, int i, const char *otherwise) {
  if (has_text(L, i)) {
    size_t len;
    const char *s = lua_tolstring(L, i, &len);
    luaL_addlstring(b, s, len);
  } else if (otherwise) {
    luaL_addstring(b, otherwise);
  }
}

/* "GET /webhooks/1: Record not found. (http 404, 4 attempts)" */
static int error_tostring(lua_State *L) {
  luaL_Buffer b;
  lua_Number attempts;
  size_t i;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  for (i = 0; i < sizeof shown / sizeof *shown; i++) lua_getfield(L, 1, shown[i]);
  attempts = lua_type(L, ATTEMPTS) == LUA_TNUMBER ? lua_tonumber(L, ATTEMPTS) : 0;
  luaL_buffinit(L, &b);
  if (has_text(L, METHOD)) {
    add_field(L, &b, METHOD, NULL);
    if (has_text(L, PATH)) {
      luaL_addchar(&b, ' ');
      add_field(L, &b, PATH, NULL);
    }
    luaL_addstring(&b, ": ");
  }
  add_field(L, &b, MESSAGE, "error");
  luaL_addstring(&b, " (");
  add_field(L, &b, KIND, "error");
  if (has_text(L, STATUS)) {
    luaL_addchar(&b, ' ');
    add_field(L, &b, STATUS, NULL);
  }
  if (lua_type(L, SENT) == LUA_TBOOLEAN && !lua_toboolean(L, SENT)) luaL_addstring(&b, ", not sent");
  if (attempts > 1 && attempts <= INT_MAX) { /* in range before the cast (NaN is not) */
    char n[32];
    snprintf(n, sizeof n, ", %d attempts", (int)attempts);
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
