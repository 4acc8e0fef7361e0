/* Clocks and sleep, which Lua lacks: core.now (monotonic) and core.sleep for the Lua layer,
 * the wall clock for Retry-After dates. */
#include <errno.h>
#include <math.h>
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

static int l_now(lua_State *L) {
  lua_pushnumber(L, tk_monotonic_time());
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

void tk_clock_open(lua_State *L) {
  static const luaL_Reg fns[] = {{"now", l_now}, {"sleep", l_sleep}, {NULL, NULL}};
  luaL_setfuncs(L, fns, 0);
}
