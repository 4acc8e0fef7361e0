/* Setting one field of the table at the top of the stack: the errors, the answers and the
 * requests the other files build are tables filled this way. */
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
