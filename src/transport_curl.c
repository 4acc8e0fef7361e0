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
  tk_client *c = (tk_client *)ud;
  size_t bytes = size * n;
  if (c->body.len + bytes > c->max_response) {
    c->overflow = 1;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  return membuf_add(&c->body, p, bytes) ? bytes : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  tk_client *c = (tk_client *)ud;
  size_t bytes = size * n;
  /* Keep only the last response's headers (after 100 Continue, for instance). */
  if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0) c->head.len = 0;
  if (c->head.len + bytes > 256 * 1024) {
    c->overflow = 1;
    return 0;
  }
  return membuf_add(&c->head, p, bytes) ? bytes : 0;
}

static CURL *ensure_easy(lua_State *L, tk_client *c) {
  CURL *e;
  if (c->easy) return c->easy;
  e = curl_easy_init();
  if (!e) return NULL;
  c->easy = e;
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L); /* a redirect must not carry the credential */
  curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, c->verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, c->verify_tls ? 2L : 0L);
  tk_getuservalue(L, 1);
  lua_getfield(L, -1, "ca_file");
  if (lua_isstring(L, -1)) curl_easy_setopt(e, CURLOPT_CAINFO, lua_tostring(L, -1)); /* copied */
  lua_pop(L, 2);
  return e;
}

static const char *field_string(lua_State *L, int t, const char *name, size_t *len, int required) {
  const char *s;
  lua_getfield(L, t, name);
  s = lua_tolstring(L, -1, len);
  if (s == NULL && (required || !lua_isnil(L, -1)))
    luaL_error(L, "bad request table: '%s' must be a string", name);
  lua_pop(L, 1); /* strings stay alive in the request table */
  return s;
}

static long field_ms(lua_State *L, int t, const char *name, double dflt) {
  double s;
  lua_getfield(L, t, name);
  s = lua_isnumber(L, -1) ? (double)lua_tonumber(L, -1) : dflt;
  lua_pop(L, 1);
  if (!(s > 0)) s = dflt;
  return (long)(s * 1000 + 0.5);
}

/* Builds the header list from request.headers, refusing CR, LF and NUL anywhere. */
static void build_headers(lua_State *L, tk_client *c, int req) {
  curl_slist_free_all(c->headers);
  c->headers = NULL;
  lua_getfield(L, req, "headers");
  if (lua_type(L, -1) == LUA_TTABLE) {
    int h = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, h)) {
      size_t kl, vl;
      const char *k, *v, *line;
      struct curl_slist *more;
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1))
        luaL_error(L, "bad request table: headers must map names to strings");
      k = lua_tolstring(L, -2, &kl);
      v = lua_tolstring(L, -1, &vl);
      if (strcspn(k, "\r\n:") != kl || strlen(k) != kl || strcspn(v, "\r\n") != vl ||
          strlen(v) != vl)
        luaL_error(L, "bad request table: header '%s' contains CR, LF or NUL", k);
      line = lua_pushfstring(L, "%s: %s", k, v);
      more = curl_slist_append(c->headers, line);
      if (!more) luaL_error(L, "out of memory building request headers");
      c->headers = more;
      lua_pop(L, 2);
    }
  }
  lua_pop(L, 1);
  /* No "Expect: 100-continue" round trip for large bodies. */
  {
    struct curl_slist *more = curl_slist_append(c->headers, "Expect:");
    if (!more) luaL_error(L, "out of memory building request headers");
    c->headers = more;
  }
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
static void push_headers(lua_State *L, const tk_membuf *head) {
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

/* client:_perform(request) -> {status, headers, body} | nil, err */
static int client_perform(lua_State *L) {
  tk_client *c = tk_check_client(L, 1);
  size_t mlen, ulen, blen = 0;
  const char *method, *url, *body;
  CURL *e;
  CURLcode rc;
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  method = field_string(L, 2, "method", &mlen, 1);
  url = field_string(L, 2, "url", &ulen, 1);
  body = field_string(L, 2, "body", &blen, 0);
  e = ensure_easy(L, c);
  if (!e) {
    luaL_pushfail(L);
    tk_push_error(L, "network", "could not create a libcurl handle");
    tk_set_bool(L, "sent", 0);
    return 2;
  }
  build_headers(L, c, 2);
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, field_ms(L, 2, "timeout", c->timeout));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, field_ms(L, 2, "connect_timeout", c->connect_timeout));
  if (body) {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body); /* alive in the request table */
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
  }
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST,
                   (strcmp(method, body ? "POST" : "GET") == 0) ? NULL : method);
  curl_easy_setopt(e, CURLOPT_NOBODY, strcmp(method, "HEAD") == 0 ? 1L : 0L);
  /* libcurl silently sends a request again when a reused connection turns out dead. For POST
   * that could create twice; for DELETE it would hide the lost answer that makes a later 404
   * mean "deleted". Both go on a connection of their own; GET and PUT keep the reused one. */
  curl_easy_setopt(e, CURLOPT_FRESH_CONNECT,
                   (strcmp(method, "POST") == 0 || strcmp(method, "DELETE") == 0) ? 1L : 0L);

  c->body.len = c->head.len = 0;
  c->overflow = 0;
  c->errbuf[0] = '\0';
  rc = curl_easy_perform(e);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)NULL); /* the Lua string may go */

  if (rc != CURLE_OK) {
    long sent_bytes = 0;
    const char *kind = c->overflow ? "limit" : classify(rc);
    curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent_bytes);
    luaL_pushfail(L);
    if (c->overflow) {
      char msg[96];
      snprintf(msg, sizeof msg, "the response is larger than the limit of %lu bytes",
               (unsigned long)c->max_response);
      tk_push_error(L, kind, msg);
    } else {
      tk_push_error(L, kind, c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
    }
    /* Nothing written means the server never saw the request (refused, DNS, TLS). */
    tk_set_bool(L, "sent", strcmp(kind, "tls") != 0 && sent_bytes > 0);
    return 2;
  }
  {
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    lua_createtable(L, 0, 3);
    tk_set_whole(L, "status", status);
    push_headers(L, &c->head);
    lua_setfield(L, -2, "headers");
    tk_set_lstring(L, "body", c->body.data ? c->body.data : "", c->body.len);
  }
  return 1;
}

void tk_transport_curl_open(lua_State *L) {
  lua_getfield(L, -1, "client_methods");
  lua_pushcfunction(L, client_perform);
  lua_setfield(L, -2, "_perform");
  lua_pop(L, 1);
}
