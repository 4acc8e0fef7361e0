/* The thinkific.Client userdata, shared by client.c (options, requests) and
 * transport_curl.c (the libcurl attempt). */
#ifndef THINKIFIC_CLIENT_H
#define THINKIFIC_CLIENT_H

#include <curl/curl.h>
#include "core.h"

typedef struct {
  char *data;
  size_t len, cap;
} tk_membuf;

/* One easy handle and its response buffers (owned by the client, so an error cannot leak
 * them). The callbacks get a tk_xfer and only copy bytes into it. */
typedef struct {
  CURL *easy;                  /* created on first use, reused for keep-alive */
  tk_membuf body, head;        /* the current response */
  size_t limit;                /* the client's max_response */
  int overflow;                /* a callback stopped at the limit */
  long index;                  /* transport_multi.c: the list index in flight, 0 when idle */
  tk_membuf url;               /* ... the URL in flight, '\0'-terminated */
  size_t path_at;              /* ... where its path starts */
  char errbuf[CURL_ERROR_SIZE];
} tk_xfer;

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

/* The open client at idx, or a Lua error naming the closed object. */
tk_client *tk_check_client(lua_State *L, int idx);
/* From (method, path, id, query, body) at stack positions 2..6 and the user value table at
 * uv, pushes the URL, the escaped path without the query, and the JSON body text or nil. */
void tk_push_prepared(lua_State *L, int uv);
/* transport_curl.c, shared with transport_multi.c: the options of every easy handle of the
 * client (callbacks writing into x); the header lists; headers of an answer as a table; the
 * error of a failed transfer (pushes nil, err); a tk_xfer's buffers and handle freed. */
void tk_setup_easy(lua_State *L, tk_client *c, CURL *e, tk_xfer *x);
void tk_ensure_headers(lua_State *L, tk_client *c);
void tk_push_headers(lua_State *L, const tk_membuf *head);
int tk_transfer_error(lua_State *L, tk_xfer *x, CURLcode rc, int method, int path);
void tk_xfer_release(tk_xfer *x);

/* Frees everything the client holds; safe to call twice. */
void tk_client_release(tk_client *c);

#endif
