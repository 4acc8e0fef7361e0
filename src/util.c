/* Small helpers the Lua layer needs and Lua lacks: clocks, sleep, path escaping. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "core.h"

double tk_wall_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double tk_monotonic_time(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Unreserved bytes stay; the dot is escaped too: "." and ".." must never become path navigation. */
static int unreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_' || c == '~';
}

static const char hex[] = "0123456789ABCDEF";

void tk_add_escaped(luaL_Buffer *b, const char *s, size_t len) {
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      luaL_addchar(b, (char)c);
    } else {
      luaL_addchar(b, '%');
      luaL_addchar(b, hex[c >> 4]);
      luaL_addchar(b, hex[c & 15]);
    }
  }
}

size_t tk_escape(char *out, const char *s, size_t len) {
  char *o = out;
  size_t i;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (unreserved(c)) {
      *o++ = (char)c;
    } else {
      *o++ = '%';
      *o++ = hex[c >> 4];
      *o++ = hex[c & 15];
    }
  }
  return (size_t)(o - out);
}

static int l_now(lua_State *L) {
  lua_pushnumber(L, tk_monotonic_time());
  return 1;
}

static int l_time(lua_State *L) {
  lua_pushnumber(L, tk_wall_time());
  return 1;
}

static int l_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);
  struct timespec ts;
  if (!(s > 0)) return 0;
  if (s > 86400) s = 86400;
  ts.tv_sec = (time_t)s;
  ts.tv_nsec = (long)((s - floor(s)) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
  return 0;
}

/* core.escape_path(id): one path segment; integers (or integral floats) print as integers. */
static int l_escape_path(lua_State *L) {
  luaL_Buffer b;
  size_t len;
  const char *s;
  char num[32];
  if (lua_type(L, 1) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, 1);
    if (lua_isinteger(L, 1)) {
      snprintf(num, sizeof num, "%lld", (long long)lua_tointeger(L, 1));
    } else if (n == floor(n) && fabs(n) <= 9007199254740992.0) {
      snprintf(num, sizeof num, "%.0f", (double)n);
    } else {
      return luaL_argerror(L, 1, "id must be a string or an integer");
    }
    s = num;
    len = strlen(num);
  } else {
    s = luaL_checklstring(L, 1, &len);
  }
  luaL_buffinit(L, &b);
  tk_add_escaped(&b, s, len);
  luaL_pushresult(&b);
  return 1;
}

void tk_util_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"now", l_now},
                                 {"time", l_time},
                                 {"sleep", l_sleep},
                                 {"escape_path", l_escape_path},
                                 {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
