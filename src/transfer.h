/* One libcurl transfer: the response buffers its callbacks fill, the options every easy handle
 * has (the client's, and core.send's), the answer's headers and the error of a failure. */
#ifndef THINKIFIC_TRANSFER_H
#define THINKIFIC_TRANSFER_H

#include <curl/curl.h>
#include "core.h"

typedef struct {
  char *data;
  size_t len, cap;
} tk_membuf;

/* Which cap a response passed (tk_xfer.overflow): the body's limit, or the headers' 256 KiB. */
enum { TK_OVER_NONE, TK_OVER_BODY, TK_OVER_HEAD };

/* One easy handle and its response buffers (owned by a Lua object, so that an error cannot
 * leak them). The callbacks get a tk_xfer and only copy bytes into it. */
typedef struct {
  CURL *easy;                  /* created on first use, reused for keep-alive */
  tk_membuf body, head;        /* the current response */
  size_t limit;                /* the largest body taken */
  int overflow;                /* a callback stopped at a limit: TK_OVER_BODY or TK_OVER_HEAD */
  long index;                  /* transport_multi.c: the list index in flight, 0 when idle */
  tk_membuf url;               /* ... the URL in flight, '\0'-terminated */
  size_t path_at;              /* ... where its path starts */
  char errbuf[CURL_ERROR_SIZE];
} tk_xfer;

/* The settings of an easy handle. */
typedef struct {
  double timeout, connect_timeout; /* seconds: the whole transfer, and connecting */
  size_t max_response;             /* bytes of body; a larger one fails with kind "limit" */
  int verify_tls;                  /* the chain and the host name */
  const char *ca_file;             /* NULL: libcurl's bundle (libcurl copies the string) */
} tk_easy_options;

/* Sets the options every easy handle has, the callbacks writing into x. */
void tk_setup_easy(CURL *e, tk_xfer *x, const tk_easy_options *o);
/* Empties x's buffers for the next transfer. */
void tk_xfer_reset(tk_xfer *x);
/* Frees x's buffers and handle; safe to call twice. */
void tk_xfer_release(tk_xfer *x);
/* Pushes the headers of x's answer as a table: lower-case names, trimmed values. */
void tk_push_headers(lua_State *L, const tk_membuf *head);
/* Pushes nil and the error of x's failed transfer (kind network, timeout, tls or limit, and
 * sent); method, path: stack indices copied into it, or 0 for none. Returns 2. */
int tk_transfer_error(lua_State *L, tk_xfer *x, CURLcode rc, int method, int path);

#endif
