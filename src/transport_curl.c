/* One API call's attempt over libcurl on the client's reused easy handle (keep-alive), and
 * what the client's easy handles share: their options and their header lists, built once. */
#include <stdlib.h>
#include <string.h>
#include "client.h"

void tk_client_setup_easy(lua_State *L, tk_client *c, CURL *e, tk_xfer *x) {
  tk_easy_options o;
  o.timeout = c->timeout;
  o.connect_timeout = c->connect_timeout;
  o.max_response = c->max_response;
  o.verify_tls = c->verify_tls;
  tk_getuservalue(L, 1);
  lua_getfield(L, -1, "ca_file");
  o.ca_file = lua_tostring(L, -1); /* NULL when none; libcurl copies it */
  tk_setup_easy(e, x, &o);
  lua_pop(L, 2);
}

static CURL *ensure_easy(lua_State *L, tk_client *c) {
  CURL *e;
  if (c->one.easy) return c->one.easy;
  e = curl_easy_init();
  if (!e) return NULL;
  c->one.easy = e;
  tk_client_setup_easy(L, c, e, &c->one);
  return e;
}

/* Appends "Name: value" to the list, or raises (the list stays owned by the client). */
static struct curl_slist *append(lua_State *L, struct curl_slist **list, const char *line) {
  struct curl_slist *more = curl_slist_append(*list, line);
  if (!more) luaL_error(L, "out of memory building request headers");
  *list = more;
  return more;
}

static void append_field(lua_State *L, struct curl_slist **list, int uv, const char *field,
                         const char *name) {
  const char *value;
  lua_getfield(L, uv, field);
  value = lua_tostring(L, -1);
  if (value) append(L, list, lua_pushfstring(L, "%s: %s", name, value));
  lua_settop(L, uv);
}

/* The client's two header lists, built once from strings checked by new_client. */
void tk_ensure_headers(lua_State *L, tk_client *c) {
  int json, uv;
  if (c->hdr_json) return;
  tk_getuservalue(L, 1);
  uv = lua_gettop(L);
  for (json = 0; json <= 1; json++) {
    struct curl_slist **list = json ? &c->hdr_json : &c->hdr_plain;
    curl_slist_free_all(*list);
    *list = NULL;
    append_field(L, list, uv, "authorization", "Authorization");
    append_field(L, list, uv, "user_agent", "User-Agent");
    append_field(L, list, uv, "subdomain", "X-Auth-Subdomain");
    append(L, list, "Accept: application/json");
    if (json) append(L, list, "Content-Type: application/json");
    append(L, list, "Expect:"); /* no 100-continue round trip */
  }
  lua_pop(L, 1);
}

enum { M_NONE, M_GET, M_POST, M_PUT, M_DELETE, M_OTHER };

static int method_code(const char *m) {
  if (strcmp(m, "GET") == 0) return M_GET;
  if (strcmp(m, "POST") == 0) return M_POST;
  if (strcmp(m, "PUT") == 0) return M_PUT;
  if (strcmp(m, "DELETE") == 0) return M_DELETE;
  return M_OTHER;
}

/* Sets the method options when they differ from the last request's. */
static void set_method(CURL *e, tk_client *c, const char *method, int has_body) {
  int code = method_code(method) * 2 + (has_body ? 1 : 0);
  if (code == c->last_method && code != M_OTHER * 2 && code != M_OTHER * 2 + 1) return;
  c->last_method = code;
  if (has_body)
    curl_easy_setopt(e, CURLOPT_POST, 1L);
  else
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                   (strcmp(method, has_body ? "POST" : "GET") == 0) ? NULL : method);
  /* libcurl silently sends a request again when a reused connection turns out dead. For POST
   * that could create twice; for DELETE it would hide the lost answer that makes a later 404
   * mean "deleted". Both go on a connection of their own; GET and PUT keep the reused one. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
                   (code / 2 == M_POST || code / 2 == M_DELETE) ? 1L : 0L);
}

/* client:_exchange(method, path, id, query, body, want_object)
 *   -> value, nil, status | nil, err
 * One attempt of the built-in libcurl transport: the request is built, sent and decoded
 * here, with no request or response table; response headers are read only for an error
 * (Retry-After and friends). */
int tk_client_exchange(lua_State *L) {
  tk_client *c = tk_check_client(L, 1);
  const char *method, *url, *body;
  size_t blen = 0;
  CURL *e;
  CURLcode rc;
  lua_settop(L, 7);
  tk_getuservalue(L, 1);   /* 8 */
  tk_push_prepared(L, 8);  /* url 9, path 10, body 11 */
  method = lua_tostring(L, 2);
  url = lua_tostring(L, 9);
  body = lua_tolstring(L, 11, &blen);
  e = ensure_easy(L, c);
  if (!e) {
    luaL_pushfail(L);
    tk_push_error(L, "network", "could not create a libcurl handle");
    tk_set_bool(L, "sent", 0);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "method");
    lua_pushvalue(L, 10);
    lua_setfield(L, -2, "path");
    return 2;
  }
  tk_ensure_headers(L, c);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, body ? c->hdr_json : c->hdr_plain);
  set_method(e, c, method, body != NULL);
  if (body) {
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); /* alive on the stack during the call */
  }

  tk_xfer_reset(&c->one);
  rc = curl_easy_perform(e);
  if (body) curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)NULL); /* the string may go */
  if (rc != CURLE_OK) return tk_transfer_error(L, &c->one, rc, 2, 10);
  {
    long status = 0;
    int headers = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    lua_pushlstring(L, c->one.body.data ? c->one.body.data : "", c->one.body.len); /* 12 */
    if (c->one.body.cap > 1024 * 1024) { /* one large answer should not stay for the client's life */
      free(c->one.body.data);
      memset(&c->one.body, 0, sizeof c->one.body);
    }
    if (status < 200 || status > 299) {
      tk_push_headers(L, &c->one.head);
      headers = lua_gettop(L);
    }
    if (tk_push_result(L, status, 12, headers, lua_toboolean(L, 7), 2, 10) == 2) return 2;
    lua_pushnil(L);
    tk_push_integer(L, status);
    return 3;
  }
}
