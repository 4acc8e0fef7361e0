/* core.send: one HTTP request of the command line (`thinkific deliver`, `thinkific sandbox
 * trigger`) on the libcurl setup the client has (transfer.c): the server's chain and host name
 * verified by libcurl, one deadline for the whole request, no redirects, http and https only,
 * a cap on the answer. A fresh easy handle per call: these commands send one request. */
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

/* Whether the len bytes at s hold no CR, LF or NUL (nothing may add a header line). */
static int one_line(const char *s, size_t len) {
  return strcspn(s, "\r\n") == len && strlen(s) == len;
}

/* opts[name]: a string without CR, LF or NUL; NULL when optional and absent. */
static const char *string_field(lua_State *L, const char *name, int optional) {
  size_t len = 0;
  const char *s = NULL;
  lua_getfield(L, 1, name);
  if (optional && lua_isnil(L, -1)) return NULL;
  if (lua_type(L, -1) == LUA_TSTRING) s = lua_tolstring(L, -1, &len);
  if (s == NULL || !one_line(s, len))
    luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a string without CR, LF or NUL", name));
  return s; /* stays on the stack */
}

static double number_field(lua_State *L, const char *name, int optional) {
  double v;
  lua_getfield(L, 1, name);
  if (optional && lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return 0;
  }
  v = lua_tonumber(L, -1);
  if (lua_type(L, -1) != LUA_TNUMBER || !(v > 0))
    luaL_argerror(L, 1, lua_pushfstring(L, "'%s' must be a positive number", name));
  lua_pop(L, 1);
  return v;
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
      if (nlen == 0 || !one_line(name, nlen) || strchr(name, ':') || !one_line(value, vlen))
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

  method = string_field(L, "method", 0);                   /* 3 */
  url = string_field(L, "url", 0);                         /* 4 */
  o.ca_file = string_field(L, "ca_file", 1);               /* 5 */
  lua_getfield(L, 1, "body");                              /* 6 */
  luaL_argcheck(L, lua_isnil(L, 6) || lua_type(L, 6) == LUA_TSTRING, 1, "'body' must be a string");
  body = lua_tolstring(L, 6, &blen);
  o.timeout = number_field(L, "timeout", 0);
  o.connect_timeout = number_field(L, "connect_timeout", 1);
  o.max_response = (size_t)number_field(L, "max_response_size", 0);
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
    if (rc == CURLE_COULDNT_CONNECT && os_errno != 0) {
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
