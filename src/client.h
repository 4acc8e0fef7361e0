/* The thinkific.Client userdata and its C methods. client.c defines the type (options,
 * lifetime) and registers the methods below in its one method table; each is defined in the
 * file named beside it. */
#ifndef THINKIFIC_CLIENT_H
#define THINKIFIC_CLIENT_H

#include "transfer.h"

#define TK_MAX_CONCURRENCY 64

typedef struct {
  tk_xfer one;                 /* the single-request handle (_exchange) */
  CURLM *multi;                /* transport_multi.c: created on first use */
  tk_xfer *pool;               /* ... with TK_MAX_CONCURRENCY easy handles (calloc'd) */
  struct curl_slist *hdr_plain; /* the client's request headers, built once: without a body */
  struct curl_slist *hdr_json;  /* ... and with a JSON body (Content-Type) */
  size_t max_response;         /* bytes; a larger body aborts with kind "limit" */
  int verify_tls;
  int closed;
  int last_method;             /* the method options currently set on the easy handle */
  double timeout, connect_timeout;
} tk_client;

/* The C methods (client:name(...)): */
/* request.c: _build_request(method, path, id, query, body) -> request, path */
int tk_client_build_request(lua_State *L);
/* transport_curl.c: _exchange(method, path, id, query, body, want_object) */
int tk_client_exchange(lua_State *L);
/* transport_multi.c: _exchange_many(ids, concurrency) -> out, failures */
int tk_client_exchange_many(lua_State *L);

/* client.c: the open client at idx, or a Lua error naming the closed object. */
tk_client *tk_check_client(lua_State *L, int idx);

/* request.c: from (method, path, id, query, body) at stack positions 2..6 and the user value
 * table at uv, pushes the URL, the escaped path without the query, and the JSON body text or
 * nil. Percent-encoding of one path segment or query value (bytes outside A-Z a-z 0-9 - _ ~)
 * into a buffer, or into out, which has room for 3 * len bytes (returns the bytes written). */
void tk_push_prepared(lua_State *L, int uv);
void tk_add_escaped(luaL_Buffer *b, const char *s, size_t len);
size_t tk_escape(char *out, const char *s, size_t len);

/* transport_curl.c, shared with transport_multi.c: sets up an easy handle of the client (at
 * stack position 1) writing into x; builds the client's two header lists once. */
void tk_client_setup_easy(lua_State *L, tk_client *c, CURL *e, tk_xfer *x);
void tk_ensure_headers(lua_State *L, tk_client *c);

#endif
