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

typedef struct {
  CURL *easy;                  /* created on first use, reused for keep-alive */
  struct curl_slist *hdr_plain; /* the client's request headers, built once: without a body */
  struct curl_slist *hdr_json;  /* ... and with a JSON body (Content-Type) */
  tk_membuf body, head;        /* the current response, owned here so an error cannot leak them */
  size_t max_response;         /* bytes; a larger body aborts with kind "limit" */
  int overflow;                /* the write callback stopped at max_response */
  int verify_tls;
  int closed;
  int last_method;             /* the method options currently set on the easy handle */
  double timeout, connect_timeout;
  char errbuf[CURL_ERROR_SIZE];
} tk_client;

/* The open client at idx, or a Lua error naming the closed object. */
tk_client *tk_check_client(lua_State *L, int idx);
/* From (method, path, id, query, body) at stack positions 2..6 and the user value table at
 * uv, pushes the URL, the escaped path without the query, and the JSON body text or nil. */
void tk_push_prepared(lua_State *L, int uv);
/* Frees everything the client holds; safe to call twice. */
void tk_client_release(tk_client *c);

#endif
