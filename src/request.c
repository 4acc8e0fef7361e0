/* Request building: the URL of a call (base URL, path, the id as one escaped segment, the
 * query) and its JSON body, for both transports; client:_build_request, the request table a
 * user's transport gets. Nothing in an id or a query value can change the path or the query. */
#include <stdio.h>
#include <string.h>
#include "client.h"

/* Unreserved bytes stay; the dot is escaped too: "." and ".." must never become path navigation. */
static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '~';
}

static const char hex[] = "0123456789ABCDEF";

void tk_add_escaped(luaL_Buffer *b, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      luaL_addchar(b, (char)c);
    } else {
      luaL_addchar(b, '%');
      luaL_addchar(b, hex[c >> 4]);
      luaL_addchar(b, hex[c & 15]);
    }
  }
}

size_t tk_escape(char *out, const char *s, size_t len) {
  char *o = out;
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  return (size_t)(o - out);
}

#define MAX_QUERY 16

/* Whether the string at stack index a sorts after the one at b, by all of their bytes. */
static int key_after(lua_State *L, int a, int b) {
  size_t alen, blen;
  const char *as = lua_tolstring(L, a, &alen), *bs = lua_tolstring(L, b, &blen);
  return tk_compare_bytes(as, alen, bs, blen) > 0;
}

/* Pushes the query table's pairs (key, value as text) and writes the stack index of each key
 * into at[], in key order; returns how many. They stay on the stack, below the buffer that
 * escapes them, until their bytes are copied: a number's text lives nowhere else. */
static int push_query(lua_State *L, int q, int at[MAX_QUERY]) {
  int n = 0, i;
  luaL_checkstack(L, 2 * MAX_QUERY + 3, "query");
  lua_pushnil(L);
  while (lua_next(L, q)) {
    if (lua_type(L, -2) != LUA_TSTRING || n == MAX_QUERY) luaL_error(L, "bad query table");
    if (lua_type(L, -1) == LUA_TNUMBER) {
      char num[32];
      if (lua_isinteger(L, -1))
        snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, -1));
      else
        snprintf(num, sizeof num, "%.17g", (double)lua_tonumber(L, -1));
      lua_pop(L, 1);
      lua_pushstring(L, num);
    } else if (lua_type(L, -1) != LUA_TSTRING) {
      luaL_error(L, "bad query value for '%s'", lua_tostring(L, -2));
    }
    at[n] = lua_gettop(L) - 1;
    for (i = n++; i > 0 && key_after(L, at[i - 1], at[i]); i--) {
      int t = at[i]; /* insertion sort: a handful of keys */
      at[i] = at[i - 1];
      at[i - 1] = t;
    }
    lua_pushvalue(L, -2); /* the key again, for lua_next */
  }
  return n;
}

/* Appends "?k=v&k=v" from the n pairs push_query left, values percent-encoded. */
static void add_query(lua_State *L, luaL_Buffer *b, const int at[MAX_QUERY], int n) {
  int i;
  for (i = 0; i < n; i++) {
    size_t klen, vlen;
    const char *k = lua_tolstring(L, at[i], &klen), *v = lua_tolstring(L, at[i] + 1, &vlen);
    luaL_addchar(b, i == 0 ? '?' : '&');
    tk_add_escaped(b, k, klen);
    luaL_addchar(b, '=');
    tk_add_escaped(b, v, vlen);
  }
}

/* Pushes three values: the URL, the escaped path without the query (for errors), and the
 * JSON body text or nil. */
void tk_push_prepared(lua_State *L, int uv) {
  luaL_Buffer b;
  size_t plen, ilen;
  const char *path = luaL_checklstring(L, 3, &plen), *id;
  char num[TK_ID_TEXT_SIZE];
  int pidx, nq, at[MAX_QUERY];
  luaL_checkstring(L, 2); /* the method */
  id = tk_id_text(L, 4, num, &ilen);
  luaL_argcheck(L, id != NULL || lua_isnil(L, 4), 4, "id must be a string or an integer");
  if (id)
    lua_pushlstring(L, id, ilen); /* made before the buffer starts, which may push on the stack */
  else
    lua_pushnil(L);
  pidx = lua_gettop(L);

  luaL_buffinit(L, &b);
  luaL_addlstring(&b, path, plen);
  if (id) {
    id = lua_tolstring(L, pidx, &ilen);
    luaL_addchar(&b, '/');
    tk_add_escaped(&b, id, ilen);
  }
  luaL_pushresult(&b);
  lua_replace(L, pidx); /* the path replaces the id */
  path = lua_tolstring(L, pidx, &plen);

  nq = lua_type(L, 5) == LUA_TTABLE ? push_query(L, 5, at) : 0;
  luaL_buffinit(L, &b);
  lua_getfield(L, uv, "base_url");
  luaL_addvalue(&b);
  luaL_addlstring(&b, path, plen);
  add_query(L, &b, at, nq);
  luaL_pushresult(&b);
  lua_insert(L, pidx); /* url, path */
  lua_settop(L, pidx + 1); /* the query's pairs go */

  if (lua_isnil(L, 6))
    lua_pushnil(L);
  else if (!tk_json_encode(L, 6))
    luaL_error(L, "cannot encode the request body: %s", lua_tostring(L, -1));
}

static void set_header(lua_State *L, int uv, const char *field, const char *name) {
  lua_getfield(L, uv, field);
  if (lua_isnil(L, -1))
    lua_pop(L, 1);
  else
    lua_setfield(L, -2, name);
}

/* client:_build_request(method, path, id, query, body) -> request, path
 * request follows the transport contract: {method, url, headers, body, timeout,
 * connect_timeout}; path is the escaped path without the query (for errors). */
int tk_client_build_request(lua_State *L) {
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
