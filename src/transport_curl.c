/* One HTTP attempt over libcurl on the client's reused easy handle (keep-alive).
 * The callbacks only copy bytes into C buffers owned by the client or return an abort code;
 * nothing calls Lua or raises while libcurl is on the stack. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include "client.h"

static int membuf_add(tk_membuf *m, const char *p, size_t n) {
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap : 1024;
    char *bigger;
    while (cap < m->len + n) cap *= 2;
    bigger = (char *)realloc(m->data, cap);
    if (!bigger) return 0;
    m->data = bigger;
    m->cap = cap;
  }
  memcpy(m->data + m->len, p, n);
  m->len += n;
  return 1;
}

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
  tk_xfer *c = (tk_xfer *)ud;
  size_t bytes = size * n;
  if (c->body.len + bytes > c->limit) {
    c->overflow = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  return membuf_add(&c->body, p, bytes) ? bytes : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  tk_xfer *c = (tk_xfer *)ud;
  size_t bytes = size * n;
  /* Keep only the last response's headers (after 100 Continue, for instance). */
  if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0) c->head.len = 0;
  if (c->head.len + bytes > 256 * 1024) {
    c->overflow = 1;
    return 0;
  }
  return membuf_add(&c->head, p, bytes) ? bytes : 0;
}

void tk_xfer_release(tk_xfer *x) {
  if (x->easy) curl_easy_cleanup(x->easy);
  x->easy = NULL;
  free(x->body.data);
  free(x->head.data);
  free(x->url.data);
  memset(&x->body, 0, sizeof x->body);
  memset(&x->head, 0, sizeof x->head);
  memset(&x->url, 0, sizeof x->url);
}

/* The options every easy handle of the client has; x receives the response. Needs the client
 * at stack position 1 (its user value holds ca_file). */
void tk_setup_easy(lua_State *L, tk_client *c, CURL *e, tk_xfer *x) {
  x->limit = c->max_response;
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect must not carry the credential */
  curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->verify_tls ? 2L : 0L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(c->timeout * 1000 + 0.5));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(c->connect_timeout * 1000 + 0.5));
  tk_getuservalue(L, 1);
  lua_getfield(L, -1, "ca_file");
  if (lua_isstring(L, -1)) curl_easy_setopt(e, CURLOPT_CAINFO, lua_tostring(L, -1)); /* copied */
  lua_pop(L, 2);
}

static CURL *ensure_easy(lua_State *L, tk_client *c) {
  CURL *e;
  if (c->one.easy) return c->one.easy;
  e = curl_easy_init();
  if (!e) return NULL;
  c->one.easy = e;
  tk_setup_easy(L, c, e, &c->one);
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

static const char *classify(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
      return "tls";
    default:
      return "network";
  }
}

/* Lower-cases the name and trims the value of each "Name: value" line into a table. */
void tk_push_headers(lua_State *L, const tk_membuf *head) {
  size_t i = 0;
  int first = 1;
  lua_newtable(L);
  while (i < head->len) {
    const char *line = head->data + i, *end = memchr(line, '\n', head->len - i);
    size_t n = end ? (size_t)(end - line) : head->len - i;
    const char *colon;
    i += n + 1;
    while (n > 0 && (line[n - 1] == '\r' || line[n - 1] == ' ')) n--;
    colon = memchr(line, ':', n);
    if (first || colon == NULL || colon == line || (size_t)(colon - line) > 128) {
      first = 0; /* the status line */
      continue;
    }
    {
      char name[129];
      const char *v = colon + 1;
      size_t k, kl = (size_t)(colon - line);
      for (k = 0; k < kl; k++) name[k] = (char)tolower((unsigned char)line[k]);
      while (v < line + n && (*v == ' ' || *v == '\t')) v++;
      lua_pushlstring(L, name, kl);
      lua_pushvalue(L, -1);
      lua_rawget(L, -3);
      if (lua_isstring(L, -1)) { /* a repeated header: join as HTTP allows */
        lua_pushliteral(L, ", ");
        lua_pushlstring(L, v, (size_t)(line + n - v));
        lua_concat(L, 3);
      } else {
        lua_pop(L, 1);
        lua_pushlstring(L, v, (size_t)(line + n - v));
      }
      lua_rawset(L, -3);
    }
  }
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

/* Pushes nil and the error of a failed transfer. */
int tk_transfer_error(lua_State *L, tk_xfer *c, CURLcode rc, int method, int path) {
  long sent_bytes = 0;
  const char *kind = c->overflow ? "limit" : classify(rc);
  curl_easy_getinfo(c->easy, CURLINFO_REQUEST_SIZE, &sent_bytes);
  luaL_pushfail(L);
  if (c->overflow) {
    char msg[96];
    snprintf(msg, sizeof msg, "the response is larger than the limit of %lu bytes",
             (unsigned long)c->limit);
    tk_push_error(L, kind, msg);
  } else {
    tk_push_error(L, kind, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
  }
  /* Nothing written means the server never saw the request (refused, DNS, TLS). */
  tk_set_bool(L, "sent", strcmp(kind, "tls") != 0 && sent_bytes > 0);
  lua_pushvalue(L, method);
  lua_setfield(L, -2, "method");
  lua_pushvalue(L, path);
  lua_setfield(L, -2, "path");
  return 2;
}

/* client:_exchange(method, path, id, query, body, want_object)
 *   -> value, nil, status | nil, err
 * One attempt of the built-in libcurl transport: the request is built, sent and decoded
 * here, with no request or response table; response headers are read only for an error
 * (Retry-After and friends). */
static int client_exchange(lua_State *L) {
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

  c->one.body.len = c->one.head.len = 0;
  c->one.overflow = 0;
  c->one.errbuf[0] = '\0';
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
    tk_pushwhole(L, status);
    return 3;
  }
}

void tk_transport_curl_open(lua_State *L) {
  lua_getfield(L, -1, "client_methods");
  lua_pushcfunction(L, client_exchange);
  lua_setfield(L, -2, "_exchange");
  lua_pop(L, 1);
}
