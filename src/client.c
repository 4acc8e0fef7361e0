/* The thinkific.Client userdata: its options, the requests it builds, and its lifetime.
 * Strings (base URL, credential, user agent) live in the userdata's user value table, so
 * nothing here is malloc'd; the libcurl state is released by one idempotent close. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"

tk_client *tk_check_client(lua_State *L, int idx) {
  tk_client *c = (tk_client *)luaL_checkudata(L, idx, TK_CLIENT_MT);
  if (c->closed) luaL_error(L, "attempt to use a closed thinkific.Client");
  return c;
}

void tk_client_release(tk_client *c) {
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
  tk_client_release(c);
  return 0;
}

static int client_tostring(lua_State *L) {
  tk_client *c = (tk_client *)luaL_checkudata(L, 1, TK_CLIENT_MT);
  if (c->closed) {
    lua_pushfstring(L, "thinkific.Client (closed): %p", (void *)c);
    return 1;
  }
  tk_getuservalue(L, 1);
  lua_getfield(L, -1, "base_url");
  {
    /* scheme://host/path without any user:password@ */
    const char *url = lua_tostring(L, -1), *host = strstr(url, "://"), *at, *slash;
    host = host ? host + 3 : url;
    slash = strchr(host, '/');
    at = strchr(host, '@');
    if (at && (!slash || at < slash)) {
      lua_pushlstring(L, url, (size_t)(host - url));
      lua_pushstring(L, at + 1);
      lua_concat(L, 2);
    }
  }
  lua_pushfstring(L, "thinkific.Client (%s): %p", lua_tostring(L, -1), (void *)c);
  return 1;
}

/* Raises "bad argument #1 to 'new' (msg)" at the user's call of thinkific.new. */
static int new_error(lua_State *L, const char *msg) {
  luaL_where(L, 2);
  lua_pushfstring(L, "bad argument #1 to 'new' (%s)", msg);
  lua_concat(L, 2);
  return lua_error(L);
}

/* Copies opts[name] (a string, or nil when optional) into the user value table at uv. */
static const char *copy_string(lua_State *L, int uv, const char *name, int required) {
  size_t len;
  const char *s;
  char msg[96];
  lua_getfield(L, 1, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    if (required) {
      snprintf(msg, sizeof msg, "'%s' is required", name);
      new_error(L, msg);
    }
    return NULL;
  }
  if (lua_type(L, -1) != LUA_TSTRING) {
    snprintf(msg, sizeof msg, "'%s' must be a string", name);
    new_error(L, msg);
  }
  s = lua_tolstring(L, -1, &len);
  /* Nothing user-supplied may add a header or split a request line. */
  if (strcspn(s, "\r\n") != len || strlen(s) != len) {
    snprintf(msg, sizeof msg, "'%s' must not contain CR, LF or NUL", name);
    new_error(L, msg);
  }
  lua_setfield(L, uv, name);
  return s;
}

static double get_number(lua_State *L, const char *name, double dflt) {
  double v = dflt;
  lua_getfield(L, 1, name);
  if (!lua_isnil(L, -1)) {
    v = lua_tonumber(L, -1);
    if (lua_type(L, -1) != LUA_TNUMBER || !(v > 0)) {
      char msg[96];
      snprintf(msg, sizeof msg, "'%s' must be a positive number", name);
      new_error(L, msg);
    }
  }
  lua_pop(L, 1);
  return v;
}

/* core.new_client(opts): the facade has checked option names and types; here the strings
 * that reach the wire are checked again, where they are used. */
static int l_new_client(lua_State *L) {
  tk_client *c;
  int uv;
  const char *key, *token, *base;
  size_t blen;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  /* Create the userdata first, so that nothing acquired later can leak. */
  c = (tk_client *)lua_newuserdatauv(L, sizeof *c, 1);
  memset(c, 0, sizeof *c);
  c->closed = 1; /* until fully set up */
  luaL_setmetatable(L, TK_CLIENT_MT);
  lua_newtable(L);
  uv = lua_gettop(L);

  key = copy_string(L, uv, "api_key", 0);
  token = copy_string(L, uv, "access_token", 0);
  if ((key == NULL) == (token == NULL)) new_error(L, "give exactly one of 'api_key' and 'access_token'");
  if (*(key ? key : token) == '\0') new_error(L, "the credential must not be empty");
  lua_pushfstring(L, "Bearer %s", key ? key : token);
  lua_setfield(L, uv, "authorization");
  lua_pushnil(L);
  lua_setfield(L, uv, key ? "api_key" : "access_token"); /* keep only the header value */

  copy_string(L, uv, "subdomain", 0);
  copy_string(L, uv, "user_agent", 1);
  copy_string(L, uv, "ca_file", 0);
  base = copy_string(L, uv, "base_url", 1);
  blen = strlen(base);
  if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
    new_error(L, "'base_url' must start with http:// or https://");
  while (blen > 0 && base[blen - 1] == '/') blen--;
  lua_pushlstring(L, base, blen);
  lua_setfield(L, uv, "base_url");

  c->timeout = get_number(L, "timeout", 30);
  c->connect_timeout = get_number(L, "connect_timeout", 10);
  c->max_response = (size_t)get_number(L, "max_response_size", 16 * 1024 * 1024);
  lua_getfield(L, 1, "verify_tls");
  c->verify_tls = lua_isnil(L, -1) || lua_toboolean(L, -1);
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

/* Appends "?k=v&k=v" with keys in sorted order, values percent-encoded. */
static void add_query(lua_State *L, luaL_Buffer *b, int q) {
  int i, n = 0;
  const char *keys[16];
  lua_pushnil(L);
  while (lua_next(L, q)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) != LUA_TSTRING || n == 16) luaL_error(L, "bad query table");
    keys[n++] = lua_tostring(L, -1); /* alive as keys of q */
  }
  for (i = 1; i < n; i++) { /* insertion sort: a handful of keys */
    int j;
    for (j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
      const char *t = keys[j];
      keys[j] = keys[j - 1];
      keys[j - 1] = t;
    }
  }
  for (i = 0; i < n; i++) {
    size_t len;
    const char *v;
    char num[32];
    lua_getfield(L, q, keys[i]);
    if (lua_type(L, -1) == LUA_TNUMBER) {
      if (lua_isinteger(L, -1))
        snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -1));
      else
        snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, -1));
      v = num;
      len = strlen(num);
    } else if (lua_type(L, -1) == LUA_TSTRING) {
      v = lua_tolstring(L, -1, &len);
    } else {
      luaL_error(L, "bad query value for '%s'", keys[i]);
      return;
    }
    lua_pop(L, 1); /* a string value stays alive in q */
    luaL_addchar(b, i == 0 ? '?' : '&');
    tk_add_escaped(b, keys[i], strlen(keys[i]));
    luaL_addchar(b, '=');
    tk_add_escaped(b, v, len);
  }
}

static void set_header(lua_State *L, int uv, const char *field, const char *name) {
  lua_getfield(L, uv, field);
  if (lua_isnil(L, -1))
    lua_pop(L, 1);
  else
    lua_setfield(L, -2, name);
}

/* From the arguments (method, path, id, query, body) at 2..6 and the user value table at uv,
 * pushes three values: the URL, the escaped path without the query (for errors), and the
 * JSON body text or nil. Nothing in an id can change the path or the query. */
void tk_push_prepared(lua_State *L, int uv) {
  luaL_Buffer b;
  size_t plen;
  const char *path = luaL_checklstring(L, 3, &plen);
  int pidx;
  luaL_checkstring(L, 2); /* the method */
  if (lua_type(L, 4) == LUA_TNUMBER) {
    /* Every digit: lua_tostring would print LuaJIT's 15+ digit numbers with an exponent. */
    lua_Number n = lua_tonumber(L, 4);
    char num[32];
    if (lua_isinteger(L, 4))
      snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, 4));
    else if (n == floor(n) && fabs(n) <= 9007199254740992.0)
      snprintf(num, sizeof num, "%.0f", (double)n);
    else
      luaL_argerror(L, 4, "id must be a string or an integer");
    lua_pushstring(L, num);
  } else if (lua_type(L, 4) == LUA_TSTRING) {
    lua_pushvalue(L, 4); /* converted before the buffer starts */
  } else if (lua_isnil(L, 4)) {
    lua_pushnil(L);
  } else {
    luaL_argerror(L, 4, "id must be a string or an integer");
  }
  pidx = lua_gettop(L);

  luaL_buffinit(L, &b);
  luaL_addlstring(&b, path, plen);
  if (!lua_isnil(L, pidx)) {
    size_t ilen;
    const char *id = lua_tolstring(L, pidx, &ilen);
    luaL_addchar(&b, '/');
    tk_add_escaped(&b, id, ilen);
  }
  luaL_pushresult(&b);
  lua_replace(L, pidx); /* the path replaces the id */
  path = lua_tolstring(L, pidx, &plen);

  luaL_buffinit(L, &b);
  lua_getfield(L, uv, "base_url");
  luaL_addvalue(&b);
  luaL_addlstring(&b, path, plen);
  if (lua_type(L, 5) == LUA_TTABLE) add_query(L, &b, 5);
  luaL_pushresult(&b);
  lua_insert(L, pidx); /* url, path */

  if (lua_isnil(L, 6))
    lua_pushnil(L);
  else if (!tk_json_encode(L, 6))
    luaL_error(L, "cannot encode the request body: %s", lua_tostring(L, -1));
}

/* client:_request(method, path, id, query, body) -> request, path
 * request follows the transport contract: {method, url, headers, body, timeout,
 * connect_timeout}; path is the escaped path without the query (for errors). */
static int client_request(lua_State *L) {
  tk_client *c = tk_check_client(L, 1);
  int uv = 7, req;
  lua_settop(L, 6);
  tk_getuservalue(L, 1);
  tk_push_prepared(L, uv); /* url 8, path 9, body 10 */

  lua_createtable(L, 0, 6);
  req = lua_gettop(L);
  lua_pushvalue(L, 2);
  lua_setfield(L, req, "method");
  lua_pushvalue(L, 8);
  lua_setfield(L, req, "url");
  lua_pushvalue(L, 10);
  lua_setfield(L, req, "body");

  lua_createtable(L, 0, 5);
  set_header(L, uv, "authorization", "Authorization");
  set_header(L, uv, "user_agent", "User-Agent");
  set_header(L, uv, "subdomain", "X-Auth-Subdomain");
  lua_pushliteral(L, "application/json");
  lua_setfield(L, -2, "Accept");
  if (!lua_isnil(L, 10)) {
    lua_pushliteral(L, "application/json");
    lua_setfield(L, -2, "Content-Type");
  }
  lua_setfield(L, req, "headers");

  lua_pushnumber(L, c->timeout);
  lua_setfield(L, req, "timeout");
  lua_pushnumber(L, c->connect_timeout);
  lua_setfield(L, req, "connect_timeout");
  lua_pushvalue(L, 9);
  return 2;
}

static int curl_global_gc(lua_State *L) {
  (void)L;
  curl_global_cleanup();
  return 0;
}

void tk_client_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"close", client_close},
                                     {"_request", client_request},
                                     {NULL, NULL}};
  static const luaL_Reg fns[] = {{"new_client", l_new_client}, {"client_state", l_client_state}, {NULL, NULL}};
  /* curl_global_init is reference counted: pair it with a cleanup when this Lua state closes. */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  lua_newuserdatauv(L, 1, 0);
  lua_newtable(L);
  lua_pushcfunction(L, curl_global_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "thinkific.curl_global");

  luaL_newmetatable(L, TK_CLIENT_MT);
  lua_pushcfunction(L, client_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, client_close);
  lua_setfield(L, -2, "__close");
  lua_pushcfunction(L, client_tostring);
  lua_setfield(L, -2, "__tostring");
  luaL_newlib(L, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "client_methods");
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_setfuncs(L, fns, 0);
}
