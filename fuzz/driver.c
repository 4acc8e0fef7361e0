/* The one libFuzzer driver, built once per target (make fuzz): a Lua 5.4 state with this tree's
 * modules, the core linked in (built with the sanitizers) and Debian's lua-cjson, runs
 * fuzz/targets/<FUZZ_TARGET>.lua on each input. A target checks its own invariants and raises
 * when one breaks; the driver turns that raise into a crash libFuzzer reports. The spec
 * spec/fuzz_regressions_spec.lua calls the same target files, so a saved input replays there. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "../src/transfer.h"

int luaopen_thinkific_core(lua_State *L);

static lua_State *state;
static int target_ref;
static int seen_ref;            /* FUZZ_KEEP_GOING: the places already reported */
static const char *keep_going; /* ... and the directory their first inputs go to */

/* env.parse_headers(raw) -> table: the core's parser of an answer's header block, which Lua
 * reaches only through a libcurl transfer (the spec gets there over loopback). */
static int parse_headers(lua_State *L) {
  size_t len;
  const char *raw = luaL_checklstring(L, 1, &len);
  tk_membuf head;
  head.data = (char *)raw;
  head.len = head.cap = len;
  tk_push_headers(L, &head);
  return 1;
}

static void fail(const char *what) {
  fprintf(stderr, "fuzz target %s: %s\n", FUZZ_TARGET, what);
  abort();
}

/* Sets package.<field> = value .. ";" .. package.<field>. */
static void prepend_path(lua_State *L, const char *field, const char *value) {
  lua_getglobal(L, "package");
  lua_pushstring(L, value);
  lua_pushliteral(L, ";");
  lua_getfield(L, -3, field);
  lua_concat(L, 3);
  lua_setfield(L, -2, field);
  lua_pop(L, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  lua_State *L = luaL_newstate();
  (void)argc;
  (void)argv;
  if (!L) fail("cannot create a Lua state");
  luaL_openlibs(L);
  prepend_path(L, "path", FUZZ_ROOT "/lua/?.lua;" FUZZ_ROOT "/lua/?/init.lua;" FUZZ_ROOT
                          "/fuzz/lib/?.lua");
  prepend_path(L, "cpath", FUZZ_CJSON_DIR "/?.so"); /* the core's require("cjson") */
  /* The core itself comes from this binary, not from a thinkific/core.so on the path. */
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, luaopen_thinkific_core);
  lua_setfield(L, -2, "thinkific.core");
  lua_pop(L, 2);

  if (luaL_dofile(L, FUZZ_ROOT "/fuzz/targets/" FUZZ_TARGET ".lua") != LUA_OK)
    fail(lua_tostring(L, -1));
  if (lua_type(L, -1) != LUA_TFUNCTION) fail("the target file must return a function");
  target_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  /* The environment every call gets (the spec builds its own). */
  lua_newtable(L);
  lua_pushcfunction(L, parse_headers);
  lua_setfield(L, -2, "parse_headers");
  lua_setglobal(L, "FUZZ_ENV");

  /* FUZZ_GC=stress (the default): a collector that never rests, so that "a value freed while
   * C still reads it" shows at once under AddressSanitizer instead of once in a million runs;
   * it makes a run 20 to 80 times slower. FUZZ_GC=normal: Lua's own settings, for long runs
   * that should reach further. */
  if (!getenv("FUZZ_GC") || strcmp(getenv("FUZZ_GC"), "normal") != 0) {
    if (luaL_dostring(L, "collectgarbage('incremental', 10, 400)") != LUA_OK)
      fail(lua_tostring(L, -1));
  }
  keep_going = getenv("FUZZ_KEEP_GOING");
  lua_newtable(L);
  seen_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  state = L;
  return 0;
}

/* FUZZ_KEEP_GOING=dir (long runs on a tree with known bugs): a broken invariant does not stop
 * the run; the first input that breaks it at each place (file:line of the raise) is written
 * into dir and its message printed once. */
static void keep_going_note(lua_State *L, const char *msg, const uint8_t *data, size_t size) {
  const char *colon = strchr(msg, ':');
  size_t place = colon ? (size_t)(strcspn(colon + 1, ":") + (colon + 1 - msg)) : strlen(msg);
  char path[512];
  size_t i, at;
  FILE *f;
  lua_rawgeti(L, LUA_REGISTRYINDEX, seen_ref);
  lua_pushlstring(L, msg, place);
  if (lua_rawget(L, -2) != LUA_TNIL) return;
  lua_pushlstring(L, msg, place);
  lua_pushboolean(L, 1);
  lua_rawset(L, -4);
  fprintf(stderr, "FUZZ_KEEP_GOING %s: %s\n", FUZZ_TARGET, msg);
  at = (size_t)snprintf(path, sizeof path, "%s/%s-", keep_going, FUZZ_TARGET);
  for (i = 0; i < place && at + 1 < sizeof path; i++) /* the place, as a file name */
    path[at++] = (msg[i] == '/' || msg[i] == ':' || msg[i] == ' ') ? '_' : msg[i];
  path[at] = '\0';
  f = fopen(path, "wb");
  if (f) {
    fwrite(data, 1, size, f);
    fclose(f);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  lua_State *L = state;
  lua_settop(L, 0);
  lua_getglobal(L, "debug");
  lua_getfield(L, 1, "traceback"); /* 2: the message handler: where the target raised */
  lua_rawgeti(L, LUA_REGISTRYINDEX, target_ref);
  lua_pushlstring(L, (const char *)data, size);
  lua_getglobal(L, "FUZZ_ENV");
  if (lua_pcall(L, 2, 0, 2) != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    if (!msg) msg = "a non-string error";
    if (!keep_going) fail(msg);
    keep_going_note(L, msg, data, size);
  }
  lua_settop(L, 0);
  return 0;
}
