/* One field of a table: setting it on the table at the top of the stack (the errors, the
 * answers and the requests the other files build are tables filled this way), and reading a
 * settings table's fields with the checks the C side makes itself. */
#include <stdint.h>
#include <string.h>
#include "core.h"

void tk_set_string(lua_State *L, const char *field, const char *value) {
  lua_pushstring(L, value);
  lua_setfield(L, -2, field);
}

void tk_set_lstring(lua_State *L, const char *field, const char *value, size_t len) {
  lua_pushlstring(L, value, len);
  lua_setfield(L, -2, field);
}

void tk_set_integer(lua_State *L, const char *field, long long value) {
  tk_push_integer(L, value);
  lua_setfield(L, -2, field);
}

void tk_set_bool(lua_State *L, const char *field, int value) {
  lua_pushboolean(L, value);
  lua_setfield(L, -2, field);
}

int tk_one_line(const char *s, size_t len) { /* by length: a Lua string may hold a NUL */
  return !memchr(s, '\r', len) && !memchr(s, '\n', len) && !memchr(s, '\0', len);
}

int tk_compare_bytes(const char *a, size_t alen, const char *b, size_t blen) {
  int c = memcmp(a, b, alen < blen ? alen : blen);
  return c != 0 ? c : (alen > blen) - (alen < blen);
}

const char *tk_check_line_field(lua_State *L, int arg, const char *field, int optional) {
  size_t len = 0;
  const char *s = NULL;
  lua_getfield(L, arg, field);
  if (optional && lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) == LUA_TSTRING) s = lua_tolstring(L, -1, &len);
  if (s == NULL || !tk_one_line(s, len))
    luaL_argerror(L, arg, lua_pushfstring(L, "'%s' must be a string without CR, LF or NUL", field));
  return s;
}

double tk_check_positive_field(lua_State *L, int arg, const char *field, int optional) {
  double v;
  lua_getfield(L, arg, field);
  if (optional && lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  v = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(v > 0))
    luaL_argerror(L, arg, lua_pushfstring(L, "'%s' must be a positive number", field));
  lua_pop(L, 1);
  return v;
}

size_t tk_check_size_field(lua_State *L, int arg, const char *field) {
  double v = tk_check_positive_field(L, arg, field, 0);
  return v < (double)SIZE_MAX ? (size_t)v : SIZE_MAX; /* compared first: the cast would be undefined */
}
