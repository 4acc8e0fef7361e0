/* Many GET /events/<id> at once over one libcurl multi handle and a pool of easy handles owned
 * by the client (created on first use, reused across calls for keep-alive). While transfers
 * are in flight nothing calls Lua or raises: an answer is decoded only after libcurl reports
 * it done and its handle is out of the multi handle. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"

/* Pushes "/events/<escaped id>" for the id at idx (checked beforehand: string or integer). */
static void push_event_path(lua_State *L, int idx) {
  luaL_Buffer b;
  size_t len;
  const char *id;
  char num[32];
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx))
      snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, idx));
    else
      snprintf(num, sizeof num, "%.0f", (double)lua_tonumber(L, idx));
    id = num;
    len = strlen(num);
  } else {
    id = lua_tolstring(L, idx, &len); /* a string: alive in the list */
  }
  luaL_buffinit(L, &b);
  luaL_addstring(&b, "/events/");
  tk_add_escaped(&b, id, len);
  luaL_pushresult(&b);
}

static int valid_id(lua_State *L, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) return lua_rawlen(L, idx) > 0;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number n;
    if (lua_isinteger(L, idx)) return 1;
    n = lua_tonumber(L, idx);
    return n == floor(n) && fabs(n) <= 9007199254740992.0;
  }
  return 0;
}

/* Takes back the handles an interrupted call (a Lua error while decoding) left in the multi
 * handle, so that every call starts with an idle pool. */
static void idle_pool(tk_client *c) {
  int i;
  for (i = 0; i < TK_MAX_CONCURRENCY; i++) {
    if (c->pool[i].easy && c->pool[i].index > 0) curl_multi_remove_handle(c->multi, c->pool[i].easy);
    c->pool[i].index = 0;
  }
}

/* Starts the transfer of list[i] on slot x; returns 0 when libcurl refuses. Building the URL
 * on the Lua stack can raise only on a memory error; idle_pool recovers at the next call. */
static int start(lua_State *L, tk_client *c, tk_xfer *x, int list, int uv, lua_Integer i) {
  lua_rawgeti(L, list, i);
  lua_getfield(L, uv, "base_url");
  push_event_path(L, lua_gettop(L) - 1);
  lua_concat(L, 2);
  curl_easy_setopt(x->easy, CURLOPT_URL, lua_tostring(L, -1)); /* copied by libcurl */
  lua_pop(L, 2);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, c->hdr_plain);
  curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x);
  x->body.len = x->head.len = 0;
  x->overflow = 0;
  x->errbuf[0] = '\0';
  if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) return 0;
  x->index = (long)i;
  return 1;
}

/* Decodes the finished transfer of slot x (out of the multi handle) into out[x->index]. */
static void finish(lua_State *L, tk_xfer *x, CURLcode rc, int list, int out, int method) {
  int top = lua_gettop(L), path;
  long i = x->index;
  x->index = 0;
  lua_rawgeti(L, list, i);
  push_event_path(L, lua_gettop(L));
  path = lua_gettop(L);
  if (rc != CURLE_OK) {
    tk_transfer_error(L, x, rc, method, path);
  } else {
    long status = 0;
    int headers = 0, body;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    body = lua_gettop(L);
    if (x->body.cap > 1024 * 1024) {
      free(x->body.data);
      memset(&x->body, 0, sizeof x->body);
    }
    if (status < 200 || status > 299) {
      tk_push_headers(L, &x->head);
      headers = lua_gettop(L);
    }
    tk_push_result(L, status, body, headers, 1, method, path);
  }
  lua_rawseti(L, out, i); /* the value, or the error after nil */
  lua_settop(L, top);
}

/* A failure before anything was sent (no handle, libcurl refused it): out[i] = error. */
static void fail_unsent(lua_State *L, int list, int out, int method, lua_Integer i,
                        const char *why) {
  int top = lua_gettop(L);
  lua_rawgeti(L, list, i);
  push_event_path(L, lua_gettop(L));
  tk_push_error(L, "network", why);
  tk_set_bool(L, "sent", 0);
  lua_pushvalue(L, method);
  lua_setfield(L, -2, "method");
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, "path");
  lua_rawseti(L, out, i);
  lua_settop(L, top);
}

/* client:_exchange_many(ids, concurrency) -> out
 * out[i] = the event (a table) or an error table (kind, status, message, sent, method, path),
 * for GET /events/<ids[i]>, at most `concurrency` transfers in flight. */
static int client_exchange_many(lua_State *L) {
  tk_client *c = tk_check_client(L, 1);
  lua_Integer n, i, next = 1, done = 0, conc;
  int active = 0, k, list = 2, uv, out, method;
  luaL_checktype(L, 2, LUA_TTABLE);
  conc = luaL_checkinteger(L, 3);
  luaL_argcheck(L, conc >= 1 && conc <= TK_MAX_CONCURRENCY, 3, "concurrency must be 1..64");
  lua_settop(L, 3);
  n = (lua_Integer)lua_rawlen(L, list);
  for (i = 1; i <= n; i++) { /* every id checked before any I/O */
    lua_rawgeti(L, list, i);
    if (!valid_id(L, -1)) luaL_argerror(L, 2, "ids must be non-empty strings or integers");
    lua_pop(L, 1);
  }
  tk_getuservalue(L, 1);
  uv = lua_gettop(L);
  tk_ensure_headers(L, c);
  lua_createtable(L, n > 0 && n < 1 << 24 ? (int)n : 0, 0);
  out = lua_gettop(L);
  lua_pushliteral(L, "GET");
  method = lua_gettop(L);
  if (n == 0) {
    lua_pushvalue(L, out);
    return 1;
  }

  if (!c->pool) {
    c->pool = (tk_xfer *)calloc(TK_MAX_CONCURRENCY, sizeof *c->pool);
    if (!c->pool) return luaL_error(L, "out of memory creating the transfer pool");
  }
  if (!c->multi) {
    c->multi = curl_multi_init();
    if (!c->multi) return luaL_error(L, "could not create a libcurl multi handle");
  }
  idle_pool(c);
  curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);

  while (done < n) {
    int running = 0;
    CURLMsg *msg;
    int queued;
    /* Fill the free slots. */
    for (k = 0; k < conc && next <= n; k++) {
      tk_xfer *x = &c->pool[k];
      if (x->index > 0) continue;
      if (!x->easy) {
        x->easy = curl_easy_init();
        if (x->easy) tk_setup_easy(L, c, x->easy, x);
      }
      if (!x->easy || !start(L, c, x, list, uv, next)) {
        fail_unsent(L, list, out, method, next, "could not start a libcurl transfer");
        done++;
      } else {
        active++;
      }
      next++;
    }
    if (active == 0) continue;
    curl_multi_perform(c->multi, &running);
    while ((msg = curl_multi_info_read(c->multi, &queued)) != NULL) {
      CURL *e;
      CURLcode rc;
      tk_xfer *x = NULL;
      if (msg->msg != CURLMSG_DONE) continue;
      e = msg->easy_handle;
      rc = msg->data.result;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
      curl_multi_remove_handle(c->multi, e); /* msg is gone after this */
      active--;
      done++;
      finish(L, x, rc, list, out, method);
    }
    if (active > 0 && running > 0) curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
  }
  lua_pushvalue(L, out);
  return 1;
}

void tk_transport_multi_open(lua_State *L) {
  lua_getfield(L, -1, "client_methods");
  lua_pushcfunction(L, client_exchange_many);
  lua_setfield(L, -2, "_exchange_many");
  lua_pop(L, 1);
}
