/* The thinkific.Client userdata: its settings, its lifetime and its one method table.
 * lua/thinkific/client.lua owns the options users give (names, defaults, messages) and hands
 * core.new_client the values to use; here only what reaches the wire is checked again.
 * Strings (base URL, header values, CA file) live in the userdata's user value table, so
 * nothing here is malloc'd; the libcurl state is released by one idempotent close. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"

tk_client *tk_check_client(lua_State *L, int idx) {
  tk_client *c = (tk_client *)luaL_checkudata(L, idx, TK_CLIENT_MT);
  if (c->closed) luaL_error(L, "attempt to use a closed thinkific.Client");
  return c;
}

/* Frees everything the client holds; safe to call twice. */
static void client_release(tk_client *c) {
  tk_xfer_release(&c->one);
  if (c->pool) {
    int i;
    for (i = 0; i < TK_MAX_CONCURRENCY; i++) {
      if (c->multi && c->pool[i].easy && c->pool[i].index > 0)
        curl_multi_remove_handle(c->multi, c->pool[i].easy);
      tk_xfer_release(&c->pool[i]);
    }
    free(c->pool);
    c->pool = NULL;
  }
  if (c->multi) curl_multi_cleanup(c->multi);
  c->multi = NULL;
  curl_slist_free_all(c->hdr_plain);
  curl_slist_free_all(c->hdr_json);
  c->hdr_plain = c->hdr_json = NULL;
  c->closed = 1;
}

static int client_close(lua_State *L) {
  tk_client *c = (tk_client *)luaL_checkudata(L, 1, TK_CLIENT_MT);
  client_release(c);
  return 0;
}

/* Pushes the URL of len bytes as a message may show it: scheme://host[:port]/path, without the
 * user information (everything up to the last '@' after "://", which hides a password holding
 * '/', '?', '#' or '@' however a reader splits it), the query and the fragment; the reading of
 * cli.common.shown_url. By length: no C-string function reads the Lua string. */
static void push_shown_url(lua_State *L, const char *url, size_t len) {
  size_t host = 0, from, to, i;
  for (i = 0; i + 3 <= len; i++) {
    if (memcmp(url + i, "://", 3) == 0) {
      host = i + 3;
      break;
    }
  }
  from = host;
  for (i = host; i < len; i++)
    if (url[i] == '@') from = i + 1;
  to = from;
  while (to < len && url[to] != '?' && url[to] != '#') to++;
  lua_pushlstring(L, url, host);
  lua_pushlstring(L, url + from, to - from);
  lua_concat(L, 2);
}

static int client_tostring(lua_State *L) {
  tk_client *c = (tk_client *)luaL_checkudata(L, 1, TK_CLIENT_MT);
  size_t len;
  const char *url;
  if (c->closed) {
    lua_pushfstring(L, "thinkific.Client (closed): %p", (void *)c);
    return 1;
  }
  tk_getuservalue(L, 1);
  lua_getfield(L, -1, "base_url");
  url = lua_tolstring(L, -1, &len); /* stays on the stack while the pieces are pushed */
  push_shown_url(L, url, len);
  lua_pushliteral(L, "thinkific.Client (");
  lua_insert(L, -2);
  lua_pushfstring(L, "): %p", (void *)c);
  lua_concat(L, 3);
  return 1;
}

/* Copies settings[name], a string without CR, LF or NUL, into the user value table at uv. */
static const char *wire_string(lua_State *L, int uv, const char *name, int optional) {
  const char *s = tk_check_line_field(L, 1, name, optional);
  lua_setfield(L, uv, name);
  return s;
}

/* core.new_client{ authorization, user_agent, subdomain, base_url, ca_file, verify_tls,
 *   timeout, connect_timeout, max_response_size } -> client
 * Every value given, as client.lua made it from the user's options. */
static int l_new_client(lua_State *L) {
  tk_client *c;
  int uv;
  const char *base;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Create the userdata first, so that nothing acquired afterwards can leak. */
  c = (tk_client *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->closed = 1; /* until fully set up */
  luaL_setmetatable(L, TK_CLIENT_MT);
  lua_newtable(L);
  uv = lua_gettop(L);

  wire_string(L, uv, "authorization", 0);
  wire_string(L, uv, "user_agent", 0);
  wire_string(L, uv, "subdomain", 1);
  wire_string(L, uv, "ca_file", 1);
  base = wire_string(L, uv, "base_url", 0);
  luaL_argcheck(L, strncmp(base, "http://", 7) == 0 || strncmp(base, "https://", 8) == 0, 1,
                "'base_url' must start with http:// or https://");
  c->timeout = tk_check_positive_field(L, 1, "timeout", 0);
  c->connect_timeout = tk_check_positive_field(L, 1, "connect_timeout", 0);
  c->max_response = tk_check_size_field(L, 1, "max_response_size");
  lua_getfield(L, 1, "verify_tls");
  c->verify_tls = lua_toboolean(L, -1);
  lua_pop(L, 1);

  lua_pushvalue(L, uv);
  tk_setuservalue(L, uv - 1);
  lua_settop(L, uv - 1);
  c->closed = 0;
  return 1;
}

/* core.client_state(client): the user value table, where the Lua layer keeps its policy. */
static int l_client_state(lua_State *L) {
  tk_check_client(L, 1);
  tk_getuservalue(L, 1);
  return 1;
}

/* The metatable of thinkific.Client, as liolib's createmeta makes the file handle's: the
 * metamethods, and __index = the table of C methods, published as core.client_methods for
 * client.lua to add the API methods to. */
static void create_meta(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", client_close},
                                     {"_build_request", tk_client_build_request},
                                     {"_exchange", tk_client_exchange},
                                     {"_exchange_many", tk_client_exchange_many},
                                     {NULL, NULL}};
  static const luaL_Reg metamethods[] = {{"__gc", client_close},
                                         {"__close", client_close},
                                         {"__tostring", client_tostring},
                                         {NULL, NULL}};
  luaL_newmetatable(L, TK_CLIENT_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
  lua_setfield(L, -3, "client_methods"); /* into the module table, below the metatable */
  lua_pop(L, 1);
}

void tk_client_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"new_client", l_new_client}, {"client_state", l_client_state}, {NULL, NULL}};
  create_meta(L);
  luaL_setfuncs(L, fns, 0);
}
