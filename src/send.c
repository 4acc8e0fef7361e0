/* core.send: one HTTP request of the command line (`thinkific deliver`, `thinkific sandbox
 * trigger`) on the libcurl setup the client has (transfer.c): the server's chain and host name
 * verified by libcurl, one deadline for the whole request, no redirects, http and https only,
 * a cap on the answer. A fresh easy handle per call: these commands send one request. */
#include <limits.h>
#include <string.h>
#include "transfer.h"

#define SEND_MT "thinkific.send"

/* What one call holds, in a userdata so that a Lua error cannot leak it. */
typedef struct {
  tk_xfer x;
  struct curl_slist *headers;
} send_box;

static void send_release(send_box *s) {
  tk_xfer_release(&s->x);
  curl_slist_free_all(s->headers);
  s->headers = NULL;
}

static int send_gc(lua_State *L) {
  send_release((send_box *)lua_touserdata(L, 1));
  return 0;
}

/* The request headers {name = value} as libcurl's list, with "Expect:" (no 100-continue
 * round trip); an empty value is sent as such ("Name;" in libcurl's words). */
static void add_headers(lua_State *L, send_box *s) {
  int t;
  lua_getfield(L, 1, "headers");
  t = lua_gettop(L);
  luaL_argcheck(L, lua_isnil(L, t) || lua_istable(L, t), 1, "'headers' must be a table");
  s->headers = curl_slist_append(NULL, "Expect:");
  if (lua_istable(L, t)) {
    lua_pushnil(L);
    while (s->headers && lua_next(L, t)) {
      size_t nlen, vlen;
      const char *name, *value;
      struct curl_slist *more;
      if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        luaL_argerror(L, 1, "'headers' must map names to strings");
      name = lua_tolstring(L, -2, &nlen);
      value = lua_tolstring(L, -1, &vlen);
      /* Not quoted in the message: the bytes could be anything. */
      if (nlen == 0 || !tk_one_line(name, nlen) || memchr(name, ':', nlen) || !tk_one_line(value, vlen))
        luaL_argerror(L, 1, "header names and values must be single lines without NUL (and "
                            "names without ':')");
      more = curl_slist_append(s->headers,
                               lua_pushfstring(L, vlen ? "%s: %s" : "%s;", name, value));
      lua_pop(L, 2); /* the line and the value */
      if (!more) break;
      s->headers = more;
    }
  }
  if (!s->headers) luaL_error(L, "out of memory building request headers");
  lua_settop(L, t - 1);
}

/* core.send{ method, url, headers = {name = value}, body, timeout, connect_timeout, ca_file,
 *   max_response_size } -> status, headers, body | nil, err
 * method, url, timeout and max_response_size are required. headers: the answer's, lower-case
 * names. err: kind "network", "timeout", "tls" or "limit", libcurl's message, and sent. Any
 * HTTP answer is a status, not an error. */
static int l_send(lua_State *L) {
  send_box *s;
  tk_easy_options o;
  const char *method, *url, *body;
  size_t blen = 0;
  CURLcode rc;
  long status = 0;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  s = (send_box *)lua_newuserdatauv(L, sizeof *s, 0); /* 2 */
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SEND_MT);

  method = tk_check_line_field(L, 1, "method", 0);         /* 3 */
  url = tk_check_line_field(L, 1, "url", 0);               /* 4 */
  o.ca_file = tk_check_line_field(L, 1, "ca_file", 1);     /* 5 */
  lua_getfield(L, 1, "body");                              /* 6 */
  luaL_argcheck(L, lua_isnil(L, 6) || lua_type(L, 6) == LUA_TSTRING, 1, "'body' must be a string");
  body = lua_tolstring(L, 6, &blen);
  o.timeout = tk_check_positive_field(L, 1, "timeout", 0);
  o.connect_timeout = tk_check_positive_field(L, 1, "connect_timeout", 1);
  o.max_response = tk_check_size_field(L, 1, "max_response_size");
  o.verify_tls = 1;
  add_headers(L, s);

  s->x.easy = curl_easy_init();
  if (!s->x.easy) {
    luaL_pushfail(L);
    tk_push_error(L, "network", "could not create a libcurl handle");
    tk_set_bool(L, "sent", 0);
    return 2;
  }
  tk_setup_easy(s->x.easy, &s->x, &o);
  curl_easy_setopt(s->x.easy, CURLOPT_URL, url);
  curl_easy_setopt(s->x.easy, CURLOPT_HTTPHEADER, s->headers);
  if (body) {
    /* A Lua string's length fits lua_Integer (64 bits signed), as curl_off_t does. */
    curl_easy_setopt(s->x.easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)blen);
    curl_easy_setopt(s->x.easy, CURLOPT_POSTFIELDS, body); /* alive on the stack */
  }
  if (strcmp(method, body ? "POST" : "GET") != 0)
    curl_easy_setopt(s->x.easy, CURLOPT_CUSTOMREQUEST, method);
  rc = curl_easy_perform(s->x.easy);
  if (rc != CURLE_OK) {
    long os_errno = 0;
    tk_transfer_error(L, &s->x, rc, 0, 0);
    /* libcurl's "Couldn't connect to server" says not why: "(Connection refused)" does. */
    curl_easy_getinfo(s->x.easy, CURLINFO_OS_ERRNO, &os_errno);
    if (rc == CURLE_COULDNT_CONNECT && os_errno > 0 && os_errno <= INT_MAX) { /* before the cast */
      lua_getfield(L, -1, "message");
      lua_pushfstring(L, "%s (%s)", lua_tostring(L, -1), strerror((int)os_errno));
      lua_setfield(L, -3, "message");
      lua_pop(L, 1);
    }
  } else {
    curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &status);
    tk_push_integer(L, status);
    tk_push_headers(L, &s->x.head);
    lua_pushlstring(L, s->x.body.data ? s->x.body.data : "", s->x.body.len);
  }
  send_release(s); /* all copied into Lua values: freed now, not at the next collection */
  return rc == CURLE_OK ? 3 : 2;
}

void tk_send_open(lua_State *L) {
  if (luaL_newmetatable(L, SEND_MT)) {
    lua_pushcfunction(L, send_gc);
    lua_setfield(L, -2, "__gc");
  }
  lua_pop(L, 1);
  lua_pushcfunction(L, l_send);
  lua_setfield(L, -2, "send");
}
