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
  struct curl_slist *headers;  /* the current request's headers, freed at the next or at close */
  tk_membuf body, head;        /* the current response, owned here so an error cannot leak them */
  size_t max_response;         /* bytes; a larger body aborts with kind "limit" */
  int overflow;                /* the write callback stopped at max_response */
  int verify_tls;
  int closed;
  double timeout, connect_timeout;
  char errbuf[CURL_ERROR_SIZE];
} tk_client;

/* The open client at idx, or a Lua error naming the closed object. */
tk_client *tk_check_client(lua_State *L, int idx);
/* Frees everything the client holds; safe to call twice. */
void tk_client_release(tk_client *c);

#endif
