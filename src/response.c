/* core.response(response, method, path): an HTTP answer to a value or to the error table of
 * API.md. 2xx: the decoded JSON (true for an empty 204). Anything else: kind "http" with the
 * server's message, the 422 "errors" normalised from every shape Thinkific sends, and
 * retry_after from Retry-After or RateLimit-Reset. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>
#include "core.h"

static const char *reason(long status) {
  switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status >= 500 ? "Server Error" : "Error";
  }
}

/* Pushes the value of header `name` (any case, all of the key's bytes) from the table at idx,
 * or nil. */
static void get_header(lua_State *L, int idx, const char *name) {
  size_t nlen = strlen(name);
  if (idx == 0 || lua_type(L, idx) != LUA_TTABLE) {
    lua_pushnil(L);
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    if (lua_type(L, -2) == LUA_TSTRING && lua_isstring(L, -1)) {
      size_t klen;
      const char *k = lua_tolstring(L, -2, &klen); /* a string: not converted, lua_next goes on */
      if (klen == nlen && strncasecmp(k, name, nlen) == 0) {
        lua_remove(L, -2);
        return;
      }
    }
    lua_pop(L, 1);
  }
  lua_pushnil(L);
}

/* Whether the len bytes at v, all of them, are one finite number (strtod's forms), in *out. */
static int whole_number(const char *v, size_t len, double *out) {
  char *end;
  *out = strtod(v, &end); /* stops at a NUL: then end is short of v + len */
  return end != v && end == v + len && isfinite(*out);
}

/* Seconds to wait as the server said, or a negative number when it did not say. */
static double retry_after(lua_State *L, int headers) {
  double wait = -1, now = tk_wall_time();
  get_header(L, headers, "retry-after");
  if (lua_isstring(L, -1)) {
    size_t len;
    const char *v = lua_tolstring(L, -1, &len); /* a number converted in this copy */
    double secs;
    if (whole_number(v, len, &secs)) {
      wait = secs;
    } else if (!memchr(v, '\0', len)) {
      time_t at = curl_getdate(v, NULL); /* the HTTP-date form */
      if (at != -1) wait = (double)at - now;
    }
  }
  lua_pop(L, 1);
  if (wait < 0) {
    get_header(L, headers, "ratelimit-reset");
    if (lua_isstring(L, -1)) {
      size_t len;
      const char *v = lua_tolstring(L, -1, &len);
      double n;
      if (whole_number(v, len, &n) && n >= 0) {
        /* Thinkific's pages disagree on the unit: judge by size (doc/API.md, retry_after). */
        if (n >= 1e12)
          wait = n / 1000 - now;
        else if (n >= 1e9)
          wait = n - now;
        else
          wait = n / 1000;
      }
    }
    lua_pop(L, 1);
  }
  return wait;
}

/* Appends {field = field, message = message} to the list at list_idx. */
static void add_item(lua_State *L, int list_idx, int field_idx, int msg_idx) {
  lua_createtable(L, 0, 2);
  if (field_idx) {
    lua_pushvalue(L, field_idx);
    lua_setfield(L, -2, "field");
  }
  lua_pushvalue(L, msg_idx);
  if (lua_isstring(L, -1)) {
    lua_tostring(L, -1); /* a number's text (in this copy): every message is a string */
  } else { /* an unexpected shape: keep it readable */
    lua_pop(L, 1);
    lua_pushliteral(L, "is invalid");
  }
  lua_setfield(L, -2, "message");
  lua_rawseti(L, list_idx, (int)lua_rawlen(L, list_idx) + 1);
}

/* field -> "x" or field -> {"x", "y"}: one item per message. */
static void add_field_messages(lua_State *L, int list_idx, int field_idx, int value_idx) {
  if (lua_type(L, value_idx) == LUA_TTABLE) {
    int i, n = (int)lua_rawlen(L, value_idx);
    for (i = 1; i <= n; i++) {
      lua_rawgeti(L, value_idx, i);
      add_item(L, list_idx, field_idx, lua_gettop(L));
      lua_pop(L, 1);
    }
  } else {
    add_item(L, list_idx, field_idx, value_idx);
  }
}

/* The string keys of the object at idx, sorted, as a Lua array pushed on the stack. */
static int sorted_keys(lua_State *L, int idx) {
  int n = 0, i, j;
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1);
    if (lua_type(L, -1) == LUA_TSTRING) {
      lua_pushvalue(L, -1);
      lua_rawseti(L, -3, ++n);
    }
  }
  for (i = 2; i <= n; i++) {
    for (j = i; j > 1; j--) {
      const char *a, *b;
      size_t alen, blen;
      int swap;
      lua_rawgeti(L, -1, j - 1);
      lua_rawgeti(L, -2, j);
      a = lua_tolstring(L, -2, &alen);
      b = lua_tolstring(L, -1, &blen);
      swap = tk_compare_bytes(a, alen, b, blen) > 0;
      if (swap) {
        lua_rawseti(L, -3, j - 1);
        lua_rawseti(L, -2, j);
      } else {
        lua_pop(L, 2);
        break;
      }
    }
  }
  return n;
}

/* An object of field -> message(s): items in field order. */
static void add_object(lua_State *L, int list_idx, int obj_idx) {
  int i, n = sorted_keys(L, obj_idx), keys = lua_gettop(L);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, keys, i);
    lua_pushvalue(L, -1);
    lua_rawget(L, obj_idx);
    add_field_messages(L, list_idx, keys + 1, keys + 2);
    lua_pop(L, 2);
  }
  lua_pop(L, 1);
}

/* Pushes the normalised list of the "errors" value at idx. */
static void normalise_errors(lua_State *L, int idx) {
  int list;
  luaL_checkstack(L, 10, "errors");
  lua_newtable(L);
  list = lua_gettop(L);
  if (lua_type(L, idx) == LUA_TSTRING) {
    add_item(L, list, 0, idx);
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    int i, n = (int)lua_rawlen(L, idx);
    if (n == 0) {
      add_object(L, list, idx);
      return;
    }
    for (i = 1; i <= n; i++) {
      int item;
      lua_rawgeti(L, idx, i);
      item = lua_gettop(L);
      if (lua_type(L, item) == LUA_TTABLE) {
        lua_getfield(L, item, "field");
        lua_getfield(L, item, "message");
        if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
          add_item(L, list, item + 1, item + 2); /* already {field =, message =} */
        else
          add_object(L, list, item);
        lua_pop(L, 2);
      } else {
        add_item(L, list, 0, item);
      }
      lua_pop(L, 1);
    }
  }
}

/* Pushes list[i][field] of the normalised list at idx: one value above the buffer, for
 * luaL_addvalue, which copies it from the stack. */
static void push_item_field(lua_State *L, int idx, int i, const char *field) {
  lua_rawgeti(L, idx, i);
  lua_getfield(L, -1, field);
  lua_remove(L, -2);
}

/* "topic invalid format; url is not valid" from the normalised list at idx. */
static void push_errors_message(lua_State *L, int idx) {
  luaL_Buffer b;
  int i, n = (int)lua_rawlen(L, idx);
  luaL_buffinit(L, &b);
  for (i = 1; i <= n; i++) {
    if (i > 1) luaL_addstring(&b, "; ");
    push_item_field(L, idx, i, "field");
    if (lua_type(L, -1) == LUA_TSTRING) {
      luaL_addvalue(&b);
      luaL_addchar(&b, ' ');
    } else {
      lua_pop(L, 1);
    }
    push_item_field(L, idx, i, "message"); /* a string: add_item made it one */
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

static void set_origin(lua_State *L, int method, int path) {
  lua_pushvalue(L, method);
  lua_setfield(L, -2, "method");
  lua_pushvalue(L, path);
  lua_setfield(L, -2, "path");
}

/* Fields every error about an answer has: status, sent, the body (truncated), the origin. */
static void set_answer(lua_State *L, long status, const char *body, size_t len, int method,
                       int path) {
  tk_set_integer(L, "status", status);
  tk_set_bool(L, "sent", 1);
  tk_set_lstring(L, "body", body, len > TK_ERROR_BODY_MAX ? TK_ERROR_BODY_MAX : len);
  set_origin(L, method, path);
}

static int http_error(lua_State *L, long status, int body_idx, int headers, int method,
                      int path) {
  int err;
  double wait;
  size_t len;
  const char *body = lua_tolstring(L, body_idx, &len);
  char fallback[64];
  luaL_pushfail(L);
  snprintf(fallback, sizeof fallback, "HTTP %ld %s", status, reason(status));
  tk_push_error(L, "http", fallback);
  err = lua_gettop(L);
  set_answer(L, status, body, len, method, path);
  wait = retry_after(L, headers);
  if (wait >= 0) {
    lua_pushnumber(L, wait);
    lua_setfield(L, err, "retry_after");
  }
  /* A JSON body may say more; an HTML page from the CDN keeps the fallback message. */
  if (len > 0 && (body[0] == '{' || body[0] == '[') && tk_json_decode(L, body_idx) &&
      lua_type(L, -1) == LUA_TTABLE) {
    int decoded = lua_gettop(L);
    lua_getfield(L, decoded, "errors");
    if (!lua_isnil(L, -1)) {
      normalise_errors(L, lua_gettop(L));
      lua_pushvalue(L, -1);
      lua_setfield(L, err, "errors");
      if (lua_rawlen(L, -1) > 0) {
        push_errors_message(L, lua_gettop(L));
        lua_setfield(L, err, "message");
      }
    }
    lua_getfield(L, decoded, "error");
    if (lua_type(L, -1) != LUA_TSTRING) lua_getfield(L, decoded, "message");
    if (lua_type(L, -1) == LUA_TSTRING) lua_setfield(L, err, "message");
  }
  lua_settop(L, err);
  return 2;
}

static const char *first_char(const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!isspace((unsigned char)s[i])) return s + i;
  return NULL;
}

int tk_push_result(lua_State *L, long status, int body_idx, int headers, int want_object,
                   int method, int path) {
  size_t len;
  const char *body = lua_tolstring(L, body_idx, &len), *first, *why;
  char msg[256];
  if (status < 200 || status > 299) return http_error(L, status, body_idx, headers, method, path);
  first = first_char(body, len);
  if (!want_object && (status == 204 || first == NULL)) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (want_object && (first == NULL || *first != '{')) {
    why = "expected a JSON object in the response";
  } else if (tk_json_decode(L, body_idx)) {
    if (lua_type(L, -1) == LUA_TTABLE) return 1;
    why = "expected a JSON object or array in the response";
  } else {
    snprintf(msg, sizeof msg, "invalid JSON in the response: %s", lua_tostring(L, -1));
    why = msg;
  }
  luaL_pushfail(L);
  tk_push_error(L, "decode", why);
  set_answer(L, status, body, len, method, path);
  return 2;
}

/* core.response(response, method, path, want_object) -> value | nil, err
 * With want_object, a 2xx answer must be a JSON object: "[]" and an empty body are errors. */
static int l_response(lua_State *L) {
  lua_Number status;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 4);
  lua_getfield(L, 1, "status"); /* 5 */
  status = lua_tonumber(L, 5);
  /* Checked as a number, before the cast (1e300 or NaN would not fit a long). */
  if (lua_type(L, 5) != LUA_TNUMBER || !(status >= 100 && status <= 599) || status != floor(status))
    return luaL_error(L, "the transport returned a response without a valid status");
  lua_getfield(L, 1, "body"); /* 6 */
  if (lua_isnil(L, 6)) {
    lua_pop(L, 1);
    lua_pushliteral(L, "");
  } else if (lua_type(L, 6) != LUA_TSTRING) {
    return luaL_error(L, "the transport returned a response whose body is not a string");
  }
  lua_getfield(L, 1, "headers"); /* 7 */
  return tk_push_result(L, (long)status, 6, 7, lua_toboolean(L, 4), 2, 3);
}

void tk_response_open(lua_State *L) {
  lua_pushcfunction(L, l_response);
  lua_setfield(L, -2, "response");
}
