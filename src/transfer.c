/* One libcurl transfer (transfer.h). The callbacks only copy bytes into C buffers owned by a
 * Lua object or return an abort code; nothing calls Lua or raises while libcurl is on the stack. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "transfer.h"

#define MAX_HEADER_BYTES (256 * 1024)

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
  tk_xfer *x = (tk_xfer *)ud;
  size_t bytes = size * n;
  if (x->body.len + bytes > x->limit) {
    x->overflow = TK_OVER_BODY;
    return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
  }
  return membuf_add(&x->body, p, bytes) ? bytes : 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud) {
  tk_xfer *x = (tk_xfer *)ud;
  size_t bytes = size * n;
  /* Keep only the last response's headers (after 100 Continue, for instance). */
  if (bytes >= 5 && memcmp(p, "HTTP/", 5) == 0) x->head.len = 0;
  if (x->head.len + bytes > MAX_HEADER_BYTES) {
    x->overflow = TK_OVER_HEAD;
    return 0;
  }
  return membuf_add(&x->head, p, bytes) ? bytes : 0;
}

void tk_xfer_reset(tk_xfer *x) {
  x->body.len = x->head.len = 0;
  x->overflow = TK_OVER_NONE;
  x->errbuf[0] = '\0';
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

/* Seconds to libcurl's milliseconds; beyond LONG_MAX ms (a timeout of math.huge), 0: none. */
static long millis(double seconds) {
  double ms = seconds * 1000 + 0.5;
  return ms < (double)LONG_MAX ? (long)ms : 0L;
}

void tk_setup_easy(CURL *e, tk_xfer *x, const tk_easy_options *o) {
  x->limit = o->max_response;
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
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->verify_tls ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->verify_tls ? 2L : 0L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, millis(o->timeout));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, millis(o->connect_timeout));
  if (o->ca_file) curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file); /* copied */
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

int tk_transfer_error(lua_State *L, tk_xfer *x, CURLcode rc, int method, int path) {
  long sent_bytes = 0;
  const char *kind = x->overflow ? "limit" : classify(rc);
  curl_easy_getinfo(x->easy, CURLINFO_REQUEST_SIZE, &sent_bytes);
  luaL_pushfail(L);
  if (x->overflow) {
    char msg[96];
    if (x->overflow == TK_OVER_HEAD)
      snprintf(msg, sizeof msg, "the response headers are larger than the limit of %lu bytes",
               (unsigned long)MAX_HEADER_BYTES);
    else
      snprintf(msg, sizeof msg, "the response is larger than the limit of %lu bytes",
               (unsigned long)x->limit);
    tk_push_error(L, kind, msg);
  } else {
    tk_push_error(L, kind, x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
  }
  /* Nothing written means the server never saw the request (refused, DNS, TLS). */
  tk_set_bool(L, "sent", strcmp(kind, "tls") != 0 && sent_bytes > 0);
  if (method) {
    lua_pushvalue(L, method);
    lua_setfield(L, -2, "method");
  }
  if (path) {
    lua_pushvalue(L, path);
    lua_setfield(L, -2, "path");
  }
  return 2;
}

static int curl_global_gc(lua_State *L) {
  (void)L;
  curl_global_cleanup();
  return 0;
}

void tk_transfer_open(lua_State *L) {
  /* curl_global_init is reference counted: pair it with a cleanup when this Lua state closes. */
  curl_global_init(CURL_GLOBAL_DEFAULT);
  lua_newuserdatauv(L, 1, 0);
  lua_newtable(L);
  lua_pushcfunction(L, curl_global_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, "thinkific.curl_global");
}
