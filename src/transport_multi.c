/* Many GET /events/<id> at once over one libcurl multi handle and a pool of easy handles owned
 * by the client (created on first use, reused across calls for keep-alive). While transfers
 * are in flight nothing calls Lua or raises: an answer is decoded only after libcurl reports
 * it done and its handle is out of the multi handle. */
#include <stdlib.h>
#include <string.h>
#include "client.h"

static const char EVENTS[] = "/events/";

/* Pushes "/events/<escaped id>" for the id at idx (checked beforehand). */
static void push_event_path(lua_State *L, int idx) {
  luaL_Buffer b;
  size_t len;
  char num[TK_ID_TEXT_SIZE];
  const char *id = tk_id_text(L, idx, num, &len);
  luaL_buffinit(L, &b);
  luaL_addstring(&b, EVENTS);
  tk_add_escaped(&b, id, len);
  luaL_pushresult(&b);
}

static int valid_id(lua_State *L, int idx) {
  size_t len;
  char num[TK_ID_TEXT_SIZE];
  return tk_id_text(L, idx, num, &len) != NULL && len > 0;
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
  size_t len, need;
  char num[TK_ID_TEXT_SIZE];
  const char *id = tk_id_text(L, idx, num, &len);
  need = blen + sizeof EVENTS + 3 * len; /* with the '\0' */
  if (need > x->url.cap) {
    char *bigger = (char *)realloc(x->url.data, need);
    if (!bigger) return 0;
    x->url.data = bigger;
    x->url.cap = need;
  }
  memcpy(x->url.data, base, blen);
  memcpy(x->url.data + blen, EVENTS, sizeof EVENTS - 1);
  x->url.len = blen + sizeof EVENTS - 1;
  x->url.len += tk_escape(x->url.data + x->url.len, id, len);
  x->url.data[x->url.len] = '\0';
  x->path_at = blen;
  return 1;
}

/* Makes the slot's easy handle on first use: the pool's handles only ever send these GETs, so
 * their headers, method and private pointer are set once. 0 when libcurl cannot. */
static int ensure_slot(lua_State *L, tk_client *c, tk_xfer *x) {
  if (x->easy) return 1;
  x->easy = curl_easy_init();
  if (!x->easy) return 0;
  tk_client_setup_easy(L, c, x->easy, x);
  curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, c->hdr_plain);
  curl_easy_setopt(x->easy, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(x->easy, CURLOPT_PRIVATE, (void *)x);
  return 1;
}

/* Starts the transfer of list[i] on slot x; returns why it could not, or NULL. */
static const char *start(lua_State *L, tk_client *c, tk_xfer *x, int list, const char *base,
                         size_t blen, lua_Integer i) {
  int built;
  if (!ensure_slot(L, c, x)) return "could not create a libcurl handle";
  lua_rawgeti(L, list, i);
  built = build_url(L, x, base, blen, lua_gettop(L));
  lua_pop(L, 1);
  if (!built) return "out of memory building the URL";
  curl_easy_setopt(x->easy, CURLOPT_URL, x->url.data); /* copied by libcurl */
  tk_xfer_reset(x);
  if (curl_multi_add_handle(c->multi, x->easy) != CURLM_OK) return "could not start a libcurl transfer";
  x->index = (long)i;
  return NULL;
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

/* A failure before anything was sent (no handle, libcurl refused it): out[i] = error, the
 * shape of get_event's for the same failure. */
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

/* The client's pool and multi handle, made on first use; NULL, or why they cannot be. */
static const char *ensure_multi(tk_client *c) {
  if (!c->pool) {
    c->pool = (tk_xfer *)calloc(TK_MAX_CONCURRENCY, sizeof *c->pool);
    if (!c->pool) return "out of memory creating the transfer pool";
  }
  if (!c->multi) {
    c->multi = curl_multi_init();
    if (!c->multi) return "could not create a libcurl multi handle";
  }
  return NULL;
}

/* client:_exchange_many(ids, concurrency) -> out, failures
 * out[i] = the event (a table) or an error table (kind, status, message, sent, method, path),
 * for GET /events/<ids[i]>, at most `concurrency` transfers in flight; failures: how many
 * errors out holds (0 spares the Lua side a pass over out). A failure of libcurl itself is
 * the error of each id it concerns, as for get_event: this never raises for it. */
int tk_client_exchange_many(lua_State *L) {
  tk_client *c = tk_check_client(L, 1);
  lua_Integer n, i, next = 1, done = 0, conc, failures = 0;
  int active = 0, k, list = 2, uv, out, method;
  const char *base, *why;
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

  why = n > 0 ? ensure_multi(c) : NULL;
  if (why) {
    for (i = 1; i <= n; i++) fail_unsent(L, list, out, method, i, why);
    failures = n;
    done = n;
  } else if (n > 0) {
    idle_pool(c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
  }

  while (done < n) {
    int running = 0;
    CURLMsg *msg;
    int queued;
    /* Fill the free slots. */
    for (k = 0; k < conc && next <= n; k++) {
      tk_xfer *x = &c->pool[k];
      if (x->index > 0) continue;
      why = start(L, c, x, list, base, blen, next);
      if (why) {
        fail_unsent(L, list, out, method, next, why);
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
