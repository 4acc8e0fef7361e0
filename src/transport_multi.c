/* Many GET /events/<id> at once over one libcurl multi handle and a pool of easy handles owned
 * by the client (created on first use, reused across calls for keep-alive). While transfers
 * are in flight nothing calls Lua or raises: an answer is decoded only after libcurl reports
 * it done and its handle is out of the multi handle. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"

/* The text of the id at idx (checked beforehand: string or integer): a string as it is, a
 * number with every digit (num has room for 32 bytes). */
static const char *id_text(lua_State *L, int idx, char *num, size_t *len) {
  if (lua_type(L, idx) == LUA_TNUMBER) {
    if (lua_isinteger(L, idx))
      snprintf(num, 32, "%lld", (long long)lua_tointeger(L, idx));
    else
      snprintf(num, 32, "%.0f", (double)lua_tonumber(L, idx));
    *len = strlen(num);
    return num;
  }
  return lua_tolstring(L, idx, len); /* a string: alive in the list */
}

/* Pushes "/events/<escaped id>" for the id at idx. */
static void push_event_path(lua_State *L, int idx) {
  luaL_Buffer b;
  size_t len;
  char num[32];
  const char *id = id_text(L, idx, num, &len);
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

/* Writes base + "/events/<escaped id>" into the slot's URL buffer, so that a start costs no Lua
 * string; the path stays there for the errors of finish. 0 when out of memory. */
static int build_url(lua_State *L, tk_xfer *x, const char *base, size_t blen, int idx) {
  static const char events[] = "/events/";
  size_t len, need;
  char num[32];
  const char *id = id_text(L, idx, num, &len);
  need = blen + sizeof events + 3 * len; /* with the '\0' */
  if (need > x->url.cap) {
    char *bigger = (char *)realloc(x->url.data, need);
    if (!bigger) return 0;
    x->url.data = bigger;
    x->url.cap = need;
  }
  memcpy(x->url.data, base, blen);
  memcpy(x->url.data + blen, events, sizeof events - 1);
  x->url.len = blen + sizeof events - 1;
  x->url.len += tk_escape(x->url.data + x->url.len, id, len);
  x->url.data[x->url.len] = '\0';
  x->path_at = blen;
  return 1;
}

/* Starts the transfer of list[i] on slot x; returns 0 when libcurl refuses. The handle's other
 * options (headers, GET, the slot as private data) were set when it was made. */
static int start(lua_State *L, tk_client *c, tk_xfer *x, int list, const char *base, size_t blen,
                 lua_Integer i) {
  int ok;
  lua_rawgeti(L, list, i);
  ok = build_url(L, x, base, blen, lua_gettop(L));
  lua_pop(L, 1);
  if (!ok) luaL_error(L, "not enough memory"); /* idle_pool recovers at the next call */
  curl_easy_setopt(x->easy, CURLOPT_URL, x->url.data); /* copied by libcurl */
  x->body.len = x->head.len = 0;
  x->overflow = 0;
  x->errbuf[0] = '\0';
  if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) return 0;
  x->index = (long)i;
  return 1;
}

/* Decodes the finished transfer of slot x (out of the multi handle) into out[x->index];
 * returns 1 when that is an error. */
static int finish(lua_State *L, tk_xfer *x, CURLcode rc, int out, int method) {
  int top = lua_gettop(L), pushed, path;
  long i = x->index;
  x->index = 0;
  lua_pushlstring(L, x->url.data + x->path_at, x->url.len - x->path_at);
  path = lua_gettop(L);
  if (rc != CURLE_OK) {
    pushed = tk_transfer_error(L, x, rc, method, path);
  } else {
    long status = 0;
    int body, headers = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    body = lua_gettop(L);
    if (status < 200 || status > 299) {
      tk_push_headers(L, &x->head);
      headers = lua_gettop(L);
    }
    pushed = tk_push_result(L, status, body, headers, 1, method, path);
  }
  /* One large answer or very long id should not stay for the client's life. */
  if (x->body.cap > 1024 * 1024) {
    free(x->body.data);
    memset(&x->body, 0, sizeof x->body);
  }
  if (x->url.cap > 64 * 1024) {
    free(x->url.data);
    memset(&x->url, 0, sizeof x->url);
  }
  lua_rawseti(L, out, i); /* the value, or the error after nil */
  lua_settop(L, top);
  return pushed == 2;
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

/* client:_exchange_many(ids, concurrency) -> out, failures
 * out[i] = the event (a table) or an error table (kind, status, message, sent, method, path),
 * for GET /events/<ids[i]>, at most `concurrency` transfers in flight; failures: how many
 * errors out holds (0 spares the Lua side a pass over out). */
static int client_exchange_many(lua_State *L) {
  tk_client *c = tk_check_client(L, 1);
  lua_Integer n, i, next = 1, done = 0, conc, failures = 0;
  int active = 0, k, list = 2, uv, out, method;
  const char *base;
  size_t blen;
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
  lua_getfield(L, uv, "base_url");
  base = lua_tolstring(L, -1, &blen); /* alive on the stack during the call */
  tk_ensure_headers(L, c);
  lua_createtable(L, n > 0 && n < 1 << 24 ? (int)n : 0, 0);
  out = lua_gettop(L);
  lua_pushliteral(L, "GET");
  method = lua_gettop(L);
  if (n == 0) {
    lua_pushvalue(L, out);
    lua_pushinteger(L, 0);
    return 2;
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
        if (x->easy) { /* the pool's handles only ever send these GETs */
          tk_setup_easy(L, c, x->easy, x);
          curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, c->hdr_plain);
          curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
          curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x);
        }
      }
      if (!x->easy || !start(L, c, x, list, base, blen, next)) {
        fail_unsent(L, list, out, method, next, "could not start a libcurl transfer");
        done++;
        failures++;
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
      failures += finish(L, x, rc, out, method);
    }
    if (active > 0 && running > 0) curl_multi_poll(c->multi, NULL, 0, 1000, NULL);
  }
  lua_pushvalue(L, out);
  lua_pushinteger(L, failures);
  return 2;
}

void tk_transport_multi_open(lua_State *L) {
  lua_getfield(L, -1, "client_methods");
  lua_pushcfunction(L, client_exchange_many);
  lua_setfield(L, -2, "_exchange_many");
  lua_pop(L, 1);
}
