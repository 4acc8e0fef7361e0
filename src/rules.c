/* The rules sandbox (thinkific.quests): a rules file runs in a lua_State of its own, made here
 * with an allocator that counts bytes and refuses past a cap, and a count hook that stops it
 * past an instruction budget. Text chunks only; an environment built from an allow-list; the
 * event and the player copied in as read-only tables, the file's rules copied out: C walks the
 * tables, nothing is shared between the two states. A count hook never fires inside a C
 * function, so the C functions a rule may call are bounded before they run: the pattern
 * functions by an estimate of their backtracking, string.rep by the memory cap.
 *
 * Lua 5.4 only: LuaJIT cannot make a state with an allocator of its own on 64-bit, so there
 * the module has no rules_new (thinkific.quests says so). */
#include "core.h"

#if LUA_VERSION_NUM >= 504
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <lualib.h>

#define RULES_MT "thinkific.Rules"
#define RULES_FUNCTION_MT "thinkific.RulesFunction"
#define HOOK_STEP 1000        /* instructions between two looks at the budget */
#define COPY_DEPTH 100        /* tables nested deeper are refused, both ways */
#define PATTERN_MAX 256       /* bytes of a pattern */
#define PATTERN_STEPS 1e8     /* the most steps a pattern function may be estimated to take */
#define MIN_MEMORY 262144     /* a cap below this cannot hold the environment */

enum { STOP_NONE, STOP_BUDGET, STOP_MEMORY };

/* The sandbox, inside its userdata (which never moves): the allocator's and the hook's state. */
typedef struct Rules {
  lua_State *S;
  size_t used, cap;      /* bytes the state holds; the most it may */
  lua_Integer budget;    /* instructions per event */
  lua_Integer left;      /* of the current event's budget */
  int stop;              /* why the last run stopped (the allocator refused a block: memory) */
} Rules;

/* Keys of S's registry (light userdata: their addresses). */
enum { K_ENV, K_FUNCS, K_INDEX, K_EVENT, K_PLAYER, K_RO, K_COUNT };
static char registry_keys[K_COUNT];
#define KEY(k) ((void *)&registry_keys[k])

static Rules *rules_of(lua_State *S) {
  void *ud;
  lua_getallocf(S, &ud);
  return (Rules *)ud;
}

/* ------------------------------------------------------------------------------------------
 * The limits. */

static void *rules_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  Rules *r = (Rules *)ud;
  void *p;
  if (ptr == NULL) osize = 0; /* then osize tells the kind of object, not a size */
  if (nsize == 0) {
    free(ptr);
    r->used -= osize;
    return NULL;
  }
  if (nsize > osize && nsize - osize > r->cap - r->used) {
    if (r->stop == STOP_NONE) r->stop = STOP_MEMORY;
    return NULL;
  }
  p = realloc(ptr, nsize);
  if (p == NULL) {
    if (r->stop == STOP_NONE) r->stop = STOP_MEMORY;
    return NULL;
  }
  r->used = r->used - osize + nsize;
  return p;
}

static void rules_hook(lua_State *S, lua_Debug *ar) {
  Rules *r = rules_of(S);
  r->left -= HOOK_STEP;
  if (r->left < 0) {
    r->left = 0;
    r->stop = STOP_BUDGET;
    if (lua_getinfo(S, "Sl", ar) && ar->currentline > 0) {
      luaL_error(S, "%s:%d: instruction budget exhausted", ar->short_src, ar->currentline);
    }
    luaL_error(S, "instruction budget exhausted");
  }
}

/* The end of a set whose '[' precedes i (Lua's reading: the first character, after a '^',
 * is taken as it is, so "[]]" holds ']'); the index after its ']'. */
static size_t set_end(const char *p, size_t lp, size_t i, const char **why) {
  if (i < lp && p[i] == '^') i++;
  do {
    if (i >= lp) {
      *why = "malformed pattern (missing ']')";
      return lp;
    }
    if (p[i++] == '%' && i < lp) i++;
  } while (i >= lp || p[i] != ']');
  return i + 1;
}

/* The steps a backtracking match of the pattern p (lp bytes) over a subject of n bytes may take
 * at most, as Lua's matcher works: every start position (unless anchored), times n + 1 for each
 * repetition (*, +, -) that has more of the pattern after it (it tries every length), each %b
 * and back-reference (each scans the subject), times 2 for each '?', times the pattern's
 * length. A repetition with nothing but captures and a final '$' after it takes its longest
 * length at once. Sets *why for a malformed pattern (Lua would refuse it too). */
static double pattern_steps(const char *p, size_t lp, size_t n, int may_anchor, const char **why) {
  size_t i = 0;
  int anchored = 0, repeats = 0, optional = 0;
  double steps, factor = (double)n + 1.0;
  *why = NULL;
  if (may_anchor && lp > 0 && p[0] == '^') {
    anchored = 1;
    i = 1;
  }
  while (i < lp) {
    char c = p[i];
    if (c == '(' || c == ')' || (c == '$' && i == lp - 1)) {
      i++;
      continue;
    }
    if (c == '%') {
      char d;
      if (i + 1 >= lp) {
        *why = "malformed pattern (ends with '%')";
        return 0;
      }
      d = p[i + 1];
      if (d == 'b' || (d >= '0' && d <= '9')) { /* a balance or a back-reference: a scan */
        if (d == 'b' && i + 3 >= lp) {
          *why = "malformed pattern (missing arguments to '%b')";
          return 0;
        }
        repeats++;
        i += d == 'b' ? 4 : 2;
        continue; /* (a '*' after it is a plain character to Lua) */
      }
      if (d == 'f') {
        if (i + 2 >= lp || p[i + 2] != '[') {
          *why = "missing '[' after '%f' in pattern";
          return 0;
        }
        i = set_end(p, lp, i + 3, why);
        if (*why) return 0;
        continue;
      }
      i += 2;
    } else if (c == '[') {
      i = set_end(p, lp, i + 1, why);
      if (*why) return 0;
    } else {
      i++;
    }
    if (i < lp && (p[i] == '*' || p[i] == '+' || p[i] == '-')) {
      size_t j = ++i;
      while (j < lp && (p[j] == '(' || p[j] == ')')) j++;
      if (!(j >= lp || (j == lp - 1 && p[j] == '$'))) repeats++;
    } else if (i < lp && p[i] == '?') {
      i++;
      optional++;
    }
  }
  steps = (anchored ? 1.0 : factor) * (lp > 0 ? (double)lp : 1.0);
  while (repeats-- > 0 && steps < 1e300) steps *= factor;
  while (optional-- > 0 && steps < 1e300) steps *= 2.0;
  return steps;
}

/* Raises in S unless the pattern function (name) may run on its arguments: a pattern of at most
 * PATTERN_MAX bytes whose estimated steps stay within PATTERN_STEPS. */
static void check_pattern(lua_State *S, const char *name, int may_anchor, int plain_arg) {
  size_t n, lp;
  const char *why;
  double steps;
  luaL_checklstring(S, 1, &n);
  const char *p = luaL_checklstring(S, 2, &lp);
  if (lp > PATTERN_MAX) {
    luaL_error(S, "string.%s: a pattern of %d bytes is longer than the %d a rules file may use",
               name, (int)(lp > 1000000 ? 1000000 : lp), PATTERN_MAX);
  }
  if (plain_arg && lua_toboolean(S, plain_arg)) {
    steps = ((double)n + 1.0) * (double)(lp ? lp : 1);
    why = NULL;
  } else {
    steps = pattern_steps(p, lp, n, may_anchor, &why);
  }
  if (why) luaL_error(S, "string.%s: %s", name, why);
  if (steps > PATTERN_STEPS) {
    char text[200];
    snprintf(text, sizeof text, "string.%s: this pattern over a subject of %zu bytes may take "
             "up to %.2g steps, more than the %.0g a rules file may use (use a simpler pattern "
             "or a shorter subject)", name, n, steps, PATTERN_STEPS);
    luaL_where(S, 1);
    lua_pushstring(S, text);
    lua_concat(S, 2);
    lua_error(S);
  }
}

/* Calls the original function (upvalue 1) with this call's arguments. */
static int call_original(lua_State *S) {
  lua_pushvalue(S, lua_upvalueindex(1));
  lua_insert(S, 1);
  lua_call(S, lua_gettop(S) - 1, LUA_MULTRET);
  return lua_gettop(S);
}

static int bounded_find(lua_State *S) {
  check_pattern(S, "find", 1, 4);
  return call_original(S);
}

static int bounded_match(lua_State *S) {
  check_pattern(S, "match", 1, 0);
  return call_original(S);
}

static int bounded_gmatch(lua_State *S) {
  check_pattern(S, "gmatch", 0, 0);
  return call_original(S);
}

static int bounded_gsub(lua_State *S) {
  check_pattern(S, "gsub", 0, 0);
  return call_original(S);
}

/* string.rep: nothing for an empty result (Lua would still loop n times), and a result larger
 * than the memory left is refused before the C loop starts. */
static int bounded_rep(lua_State *S) {
  Rules *r = rules_of(S);
  size_t l, lsep;
  luaL_checklstring(S, 1, &l);
  lua_Integer n = luaL_checkinteger(S, 2);
  luaL_optlstring(S, 3, "", &lsep);
  if (n <= 0 || l + lsep == 0) {
    lua_pushliteral(S, "");
    return 1;
  }
  if ((double)n * (double)l + (double)(n - 1) * (double)lsep > (double)(r->cap - r->used)) {
    r->stop = STOP_MEMORY;
    luaL_error(S, "string.rep: the result would not fit in the memory cap");
  }
  return call_original(S);
}

/* ------------------------------------------------------------------------------------------
 * Read-only tables in S: an empty proxy whose metatable reads from the data table. */

static int ro_newindex(lua_State *S) {
  return luaL_error(S, "attempt to change a read-only table (the event, the player and the "
                    "libraries cannot be changed: copy what you need into a local)");
}

/* The data table of the proxy at index 1. */
static void ro_data(lua_State *S) {
  if (!lua_getmetatable(S, 1)) luaL_error(S, "not a read-only table");
  lua_getfield(S, -1, "__index");
}

static int ro_len(lua_State *S) {
  ro_data(S);
  lua_pushinteger(S, (lua_Integer)lua_rawlen(S, -1));
  return 1;
}

static int ro_pairs(lua_State *S) {
  ro_data(S);
  lua_getglobal(S, "next");
  lua_insert(S, -2);
  lua_pushnil(S);
  return 3;
}

/* Replaces the table at the top of S with a read-only proxy of it. */
static void make_readonly(lua_State *S) {
  lua_newtable(S);                       /* data proxy */
  lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_RO)); /* data proxy shared */
  lua_createtable(S, 0, 4);              /* data proxy shared mt */
  lua_pushvalue(S, -4);
  lua_setfield(S, -2, "__index");
  lua_getfield(S, -2, "__newindex");
  lua_setfield(S, -2, "__newindex");
  lua_getfield(S, -2, "__len");
  lua_setfield(S, -2, "__len");
  lua_getfield(S, -2, "__pairs");
  lua_setfield(S, -2, "__pairs");
  lua_setmetatable(S, -3);
  lua_pop(S, 1);
  lua_remove(S, -2);                     /* proxy */
}

/* ------------------------------------------------------------------------------------------
 * Copies. Into S (an event, a player): run inside a protected call on S, reading the other
 * state with raw operations only (none raises); the L stack was checked for room beforehand. */

typedef struct {
  lua_State *L;
  int event, player; /* indices in L */
  const char *text;  /* load: the chunk */
  size_t len;
  const char *name;
  int index;         /* call: which function */
} Job;

static void copy_in(lua_State *S, lua_State *L, int idx, int depth) {
  switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: lua_pushboolean(S, lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
      if (lua_isinteger(L, idx)) lua_pushinteger(S, lua_tointeger(L, idx));
      else lua_pushnumber(S, lua_tonumber(L, idx));
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(L, idx, &len);
      lua_pushlstring(S, s, len);
      break;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(L, idx) == NULL) { lua_pushlightuserdata(S, NULL); break; } /* null */
      lua_pushnil(S);
      break;
    case LUA_TTABLE:
      if (depth >= COPY_DEPTH) luaL_error(S, "the event is nested deeper than %d levels", COPY_DEPTH);
      luaL_checkstack(S, 4, "copying the event");
      idx = lua_absindex(L, idx);
      lua_newtable(S);
      lua_pushnil(L);
      while (lua_next(L, idx)) {
        int kt = lua_type(L, -2);
        if (kt == LUA_TSTRING || kt == LUA_TNUMBER || kt == LUA_TBOOLEAN) {
          copy_in(S, L, -2, depth + 1);
          copy_in(S, L, -1, depth + 1);
          if (lua_isnil(S, -1) || lua_isnil(S, -2)) lua_pop(S, 2);
          else lua_rawset(S, -3);
        }
        lua_pop(L, 1);
      }
      make_readonly(S);
      break;
    default: lua_pushnil(S); break; /* functions, userdata: not data */
  }
}

/* S: copies the job's event and player into the registry. */
static int do_begin(lua_State *S) {
  Job *job = (Job *)lua_touserdata(S, 1);
  copy_in(S, job->L, job->event, 0);
  lua_rawsetp(S, LUA_REGISTRYINDEX, KEY(K_EVENT));
  copy_in(S, job->L, job->player, 0);
  lua_rawsetp(S, LUA_REGISTRYINDEX, KEY(K_PLAYER));
  return 0;
}

/* S: collects every function reachable from the value at idx into FUNCS (a list) and INDEX
 * (function -> its position), so that the copy out can name them. seen: the tables walked. */
static void collect_functions(lua_State *S, int idx, int seen) {
  idx = lua_absindex(S, idx);
  if (lua_type(S, idx) == LUA_TFUNCTION) {
    lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_INDEX));
    lua_pushvalue(S, idx);
    if (lua_rawget(S, -2) == LUA_TNIL) {
      lua_Integer n;
      lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_FUNCS));
      n = (lua_Integer)lua_rawlen(S, -1) + 1;
      lua_pushvalue(S, idx);
      lua_rawseti(S, -2, n);
      lua_pop(S, 1);
      lua_pushvalue(S, idx);
      lua_pushinteger(S, n);
      lua_rawset(S, -4);
    }
    lua_pop(S, 2);
  } else if (lua_type(S, idx) == LUA_TTABLE) {
    lua_pushvalue(S, idx);
    if (lua_rawget(S, seen) != LUA_TNIL) {
      lua_pop(S, 1);
      return;
    }
    lua_pop(S, 1);
    lua_pushvalue(S, idx);
    lua_pushboolean(S, 1);
    lua_rawset(S, seen);
    luaL_checkstack(S, 6, "reading the rules");
    lua_pushnil(S);
    while (lua_next(S, idx)) {
      collect_functions(S, -1, seen);
      lua_pop(S, 1);
    }
  }
}

/* S: loads and runs the chunk with the environment; leaves its first result. */
static int do_load(lua_State *S) {
  Job *job = (Job *)lua_touserdata(S, 1);
  int status = luaL_loadbufferx(S, job->text, job->len, job->name, "t");
  if (status != LUA_OK) return lua_error(S);
  lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_ENV));
  lua_setupvalue(S, -2, 1);
  lua_call(S, 0, 1);
  lua_newtable(S);
  collect_functions(S, -2, lua_gettop(S));
  lua_pop(S, 1);
  return 1;
}

/* S: calls FUNCS[index](event, player); leaves whether its first result is truthy. */
static int do_call(lua_State *S) {
  Job *job = (Job *)lua_touserdata(S, 1);
  lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_FUNCS));
  if (lua_rawgeti(S, -1, job->index) != LUA_TFUNCTION) return luaL_error(S, "no such rules function");
  lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_EVENT));
  lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_PLAYER));
  lua_call(S, 2, 1);
  lua_pushboolean(S, lua_toboolean(S, -1));
  return 1;
}

/* Out of S into L (in L's context: an L error leaves S idle, its stack reset by the next
 * call). seen (an L index) maps S tables (by address) to their copies: shared tables stay
 * shared, cycles stay cycles. */
static void copy_out(lua_State *L, lua_State *S, int idx, int seen, int depth) {
  idx = lua_absindex(S, idx);
  switch (lua_type(S, idx)) {
    case LUA_TNIL: lua_pushnil(L); break;
    case LUA_TBOOLEAN: lua_pushboolean(L, lua_toboolean(S, idx)); break;
    case LUA_TNUMBER:
      if (lua_isinteger(S, idx)) lua_pushinteger(L, lua_tointeger(S, idx));
      else lua_pushnumber(L, lua_tonumber(S, idx));
      break;
    case LUA_TSTRING: {
      size_t len;
      const char *s = lua_tolstring(S, idx, &len);
      lua_pushlstring(L, s, len);
      break;
    }
    case LUA_TLIGHTUSERDATA:
      if (lua_touserdata(S, idx) != NULL) luaL_error(L, "a rules file cannot return a userdata");
      lua_pushlightuserdata(L, NULL);
      break;
    case LUA_TFUNCTION:
      lua_rawgetp(S, LUA_REGISTRYINDEX, KEY(K_INDEX));
      lua_pushvalue(S, idx);
      lua_rawget(S, -2);
      lua_createtable(L, 1, 0);
      lua_pushinteger(L, lua_tointeger(S, -1));
      lua_rawseti(L, -2, 1);
      luaL_setmetatable(L, RULES_FUNCTION_MT);
      lua_pop(S, 2);
      break;
    case LUA_TTABLE: {
      int copy;
      lua_pushlightuserdata(L, (void *)lua_topointer(S, idx));
      if (lua_rawget(L, seen) == LUA_TTABLE) break;
      lua_pop(L, 1);
      if (depth >= COPY_DEPTH) luaL_error(L, "the rules are nested deeper than %d levels", COPY_DEPTH);
      luaL_checkstack(L, 6, "copying the rules");
      if (!lua_checkstack(S, 4)) luaL_error(L, "copying the rules: no room on the stack");
      lua_newtable(L);
      copy = lua_gettop(L);
      lua_pushlightuserdata(L, (void *)lua_topointer(S, idx));
      lua_pushvalue(L, copy);
      lua_rawset(L, seen);
      lua_pushnil(S);
      while (lua_next(S, idx)) {
        int kt = lua_type(S, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
          luaL_error(L, "a rules file's tables may only have string, number or boolean keys");
        }
        copy_out(L, S, -2, seen, depth + 1);
        copy_out(L, S, -1, seen, depth + 1);
        lua_rawset(L, copy);
        lua_pop(S, 1);
      }
      break;
    }
    default:
      luaL_error(L, "a rules file cannot return a %s", lua_typename(S, lua_type(S, idx)));
  }
}

/* ------------------------------------------------------------------------------------------
 * The environment. */

/* table.insert and table.remove in Lua, so that the count hook sees their shifting loops (in C,
 * `#t` can be made huge with a few keys, and the loop would run unseen). */
static const char PRELUDE[] =
  "local select, error, type, floor = select, error, type, math.floor\n"
  "local function insert(t, ...)\n"
  "  local count, e = select('#', ...), #t + 1\n"
  "  if count == 1 then t[e] = ...; return end\n"
  "  if count ~= 2 then error(\"wrong number of arguments to 'insert'\", 2) end\n"
  "  local pos, v = ...\n"
  "  if type(pos) ~= 'number' or floor(pos) ~= pos or pos < 1 or pos > e then\n"
  "    error(\"bad argument #2 to 'insert' (position out of bounds)\", 2)\n"
  "  end\n"
  "  for i = e, pos + 1, -1 do t[i] = t[i - 1] end\n"
  "  t[pos] = v\n"
  "end\n"
  "local function remove(t, pos)\n"
  "  local size = #t\n"
  "  if pos == nil then pos = size\n"
  "  elseif type(pos) ~= 'number' or floor(pos) ~= pos then\n"
  "    error(\"bad argument #2 to 'remove' (number has no integer representation)\", 2)\n"
  "  elseif pos ~= size and (pos < 1 or pos > size + 1) then\n"
  "    error(\"bad argument #2 to 'remove' (position out of bounds)\", 2)\n"
  "  end\n"
  "  local value = t[pos]\n"
  "  while pos < size do t[pos] = t[pos + 1]; pos = pos + 1 end\n"
  "  if pos <= size then t[pos] = nil end\n"
  "  return value\n"
  "end\n"
  "return insert, remove\n";

/* Copies the named fields of the table at idx into the table at the top. */
static void pick(lua_State *S, int idx, const char *const names[]) {
  idx = lua_absindex(S, idx);
  for (; *names; names++) {
    lua_getfield(S, idx, *names);
    lua_setfield(S, -2, *names);
  }
}

/* Replaces fields of the table at the top with closures over the originals. */
static void bound(lua_State *S, const char *name, lua_CFunction f) {
  lua_getfield(S, -1, name);
  lua_pushcclosure(S, f, 1);
  lua_setfield(S, -2, name);
}

static const char *const BASE_NAMES[] = {"assert", "error", "ipairs", "next", "pairs", "select",
  "tonumber", "tostring", "type", "rawequal", NULL};
static const char *const STRING_NAMES[] = {"byte", "char", "find", "format", "gmatch", "gsub",
  "len", "lower", "match", "rep", "reverse", "sub", "upper", NULL};
static const char *const TABLE_NAMES[] = {"concat", "pack", "sort", "unpack", NULL};
static const char *const MATH_NAMES[] = {"abs", "ceil", "cos", "deg", "exp", "floor", "fmod",
  "huge", "log", "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "sin", "sqrt",
  "tan", "tointeger", "type", "ult", "acos", "asin", "atan", NULL};
static const char *const UTF8_NAMES[] = {"char", "charpattern", "codepoint", "codes", "len",
  "offset", NULL};

/* S: builds the environment of rules files (registry K_ENV) and the registry tables. */
static int do_setup(lua_State *S) {
  int g;
  luaL_requiref(S, "_G", luaopen_base, 1);
  g = lua_gettop(S);
  luaL_requiref(S, "string", luaopen_string, 1); /* (S's globals: the prelude's, never a rule's) */
  luaL_requiref(S, "table", luaopen_table, 1);
  luaL_requiref(S, "math", luaopen_math, 1);
  luaL_requiref(S, "utf8", luaopen_utf8, 1);

  /* The read-only metatable's shared functions. */
  lua_createtable(S, 0, 3);
  lua_pushcfunction(S, ro_newindex);
  lua_setfield(S, -2, "__newindex");
  lua_pushcfunction(S, ro_len);
  lua_setfield(S, -2, "__len");
  lua_pushcfunction(S, ro_pairs);
  lua_setfield(S, -2, "__pairs");
  lua_rawsetp(S, LUA_REGISTRYINDEX, KEY(K_RO));

  lua_newtable(S); /* env */
  pick(S, g, BASE_NAMES);
  lua_pushlightuserdata(S, NULL);
  lua_setfield(S, -2, "null");

  lua_newtable(S); /* string */
  pick(S, g + 1, STRING_NAMES);
  bound(S, "find", bounded_find);
  bound(S, "match", bounded_match);
  bound(S, "gmatch", bounded_gmatch);
  bound(S, "gsub", bounded_gsub);
  bound(S, "rep", bounded_rep);
  make_readonly(S);
  /* Methods on strings ("x"):rep(n) find the same bounded functions. */
  lua_pushliteral(S, "");
  lua_getmetatable(S, -1);
  lua_pushvalue(S, -3);
  lua_setfield(S, -2, "__index");
  lua_pop(S, 2);
  lua_setfield(S, -2, "string");

  lua_newtable(S); /* table */
  pick(S, g + 2, TABLE_NAMES);
  if (luaL_loadbufferx(S, PRELUDE, sizeof PRELUDE - 1, "=rules prelude", "t") != LUA_OK) {
    return lua_error(S);
  }
  lua_call(S, 0, 2);
  lua_setfield(S, -3, "remove");
  lua_setfield(S, -2, "insert");
  make_readonly(S);
  lua_setfield(S, -2, "table");

  lua_newtable(S); /* math: no random (a rebuild must give what the first run gave) */
  pick(S, g + 3, MATH_NAMES);
  make_readonly(S);
  lua_setfield(S, -2, "math");

  lua_newtable(S); /* utf8 */
  pick(S, g + 4, UTF8_NAMES);
  make_readonly(S);
  lua_setfield(S, -2, "utf8");

  make_readonly(S); /* no globals set by one rule for the next */
  lua_rawsetp(S, LUA_REGISTRYINDEX, KEY(K_ENV));
  lua_newtable(S);
  lua_rawsetp(S, LUA_REGISTRYINDEX, KEY(K_FUNCS));
  lua_newtable(S);
  lua_rawsetp(S, LUA_REGISTRYINDEX, KEY(K_INDEX));
  return 0;
}

/* ------------------------------------------------------------------------------------------
 * The userdata. */

static Rules *check_rules(lua_State *L) {
  Rules *r = (Rules *)luaL_checkudata(L, 1, RULES_MT);
  if (r->S == NULL) luaL_error(L, "thinkific.Rules: the sandbox is closed");
  return r;
}

static void close_state(Rules *r) {
  if (r->S) {
    lua_close(r->S);
    r->S = NULL;
  }
}

static int rules_close(lua_State *L) {
  close_state((Rules *)luaL_checkudata(L, 1, RULES_MT));
  return 0;
}

/* Before a run: nothing stopped it yet; with a new budget, or what is left of the event's. */
static void arm(Rules *r, int new_budget) {
  r->stop = STOP_NONE;
  if (new_budget) r->left = r->budget;
}

/* The bytes S's collector counts as in use. */
static size_t state_bytes(lua_State *S) {
  return (size_t)lua_gc(S, LUA_GCCOUNT) * 1024 + (size_t)lua_gc(S, LUA_GCCOUNTB);
}

/* Runs f(job) protected on S within the budget (see arm). On success leaves f's results on S
 * and returns 0; on failure pushes onto L nil, the message, the kind ("instructions", "memory",
 * "error"), collects S's garbage and returns 3. */
static int run(lua_State *L, Rules *r, lua_CFunction f, Job *job, int results) {
  lua_State *S = r->S;
  int status;
  lua_settop(S, 0);
  lua_pushcfunction(S, f);
  lua_pushlightuserdata(S, job);
  status = lua_pcall(S, 1, results, 0);
  if (status == LUA_OK) return 0;
  lua_pushnil(L);
  if (lua_type(S, -1) == LUA_TSTRING) {
    lua_pushstring(L, lua_tostring(S, -1));
  } else {
    lua_pushfstring(L, "(error object is a %s value)", luaL_typename(S, -1));
  }
  if (r->stop == STOP_BUDGET) lua_pushliteral(L, "instructions");
  else if (r->stop == STOP_MEMORY || status == LUA_ERRMEM) lua_pushliteral(L, "memory");
  else lua_pushliteral(L, "error");
  lua_settop(S, 0);
  /* Each collection frees half of the call frames a deep recursion left: collect until the
   * state stops shrinking. */
  for (int i = 0; i < 64; i++) {
    size_t used = state_bytes(S);
    lua_gc(S, LUA_GCCOLLECT);
    if (state_bytes(S) >= used) break;
  }
#ifdef __GLIBC__
  malloc_trim(0); /* what a stopped rule took goes back to the system, not only to malloc */
#endif
  return 3;
}

/* core.rules_new(memory_bytes, instructions) -> sandbox */
static int rules_new(lua_State *L) {
  lua_Integer cap = luaL_checkinteger(L, 1);
  lua_Integer budget = luaL_checkinteger(L, 2);
  Rules *r;
  luaL_argcheck(L, cap >= MIN_MEMORY, 1, "the memory cap must be at least 256 KiB");
  luaL_argcheck(L, budget >= HOOK_STEP, 2, "the instruction budget must be at least 1000");
  r = (Rules *)lua_newuserdatauv(L, sizeof(Rules), 0);
  memset(r, 0, sizeof *r);
  luaL_setmetatable(L, RULES_MT);
  r->cap = (size_t)cap;
  r->budget = budget;
  r->S = lua_newstate(rules_alloc, r);
  if (r->S == NULL) return luaL_error(L, "cannot make the rules sandbox: out of memory");
  lua_sethook(r->S, rules_hook, LUA_MASKCOUNT, HOOK_STEP);
  arm(r, 0);
  r->left = LUA_MAXINTEGER;
  if (run(L, r, do_setup, NULL, 0)) {
    lua_pushfstring(L, "cannot make the rules sandbox: %s", lua_tostring(L, -2));
    close_state(r);
    return lua_error(L);
  }
  return 1;
}

/* sandbox:load(text, chunkname) -> value | nil, message, kind. Functions come out as marker
 * tables (core.rules_function gives their number for sandbox:call). */
/* L, protected: copies the value at the top of S (its light userdata argument) out. */
static int do_copy_out(lua_State *L) {
  lua_State *S = (lua_State *)lua_touserdata(L, 1);
  lua_newtable(L);
  copy_out(L, S, -1, 2, 0);
  return 1;
}

static int rules_load(lua_State *L) {
  Rules *r = check_rules(L);
  Job job;
  memset(&job, 0, sizeof job);
  job.text = luaL_checklstring(L, 2, &job.len);
  job.name = luaL_checkstring(L, 3);
  arm(r, 1);
  if (run(L, r, do_load, &job, 1)) return 3;
  lua_pushcfunction(L, do_copy_out);
  lua_pushlightuserdata(L, r->S);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) { /* a value that cannot be copied */
    lua_pushnil(L);
    lua_insert(L, -2);
    lua_pushliteral(L, "error");
    lua_settop(r->S, 0);
    return 3;
  }
  lua_settop(r->S, 0);
  return 1;
}

/* sandbox:begin(event, player) -> true | nil, message, kind: a new budget, and copies of both
 * (read-only) for the calls that follow. */
static int rules_begin(lua_State *L) {
  Rules *r = check_rules(L);
  Job job;
  memset(&job, 0, sizeof job);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  if (!lua_checkstack(L, 2 * COPY_DEPTH + 8)) return luaL_error(L, "no room on the stack");
  job.L = L;
  job.event = 2;
  job.player = 3;
  arm(r, 1);
  if (run(L, r, do_begin, &job, 0)) return 3;
  lua_pushboolean(L, 1);
  return 1;
}

/* sandbox:call(n) -> whether function n returned a truthy value | nil, message, kind */
static int rules_call(lua_State *L) {
  Rules *r = check_rules(L);
  Job job;
  memset(&job, 0, sizeof job);
  job.index = (int)luaL_checkinteger(L, 2);
  arm(r, 0);
  if (run(L, r, do_call, &job, 1)) return 3;
  lua_pushboolean(L, lua_toboolean(r->S, -1));
  lua_settop(r->S, 0);
  return 1;
}

/* sandbox:finish(): lets the event's copies go. */
static int rules_finish(lua_State *L) {
  Rules *r = check_rules(L);
  lua_settop(r->S, 0);
  lua_pushnil(r->S);
  lua_rawsetp(r->S, LUA_REGISTRYINDEX, KEY(K_EVENT));
  lua_pushnil(r->S);
  lua_rawsetp(r->S, LUA_REGISTRYINDEX, KEY(K_PLAYER));
  return 0;
}

/* sandbox:memory([collect]) -> bytes held, the cap */
static int rules_memory(lua_State *L) {
  Rules *r = check_rules(L);
  if (lua_toboolean(L, 2)) lua_gc(r->S, LUA_GCCOLLECT);
  lua_pushinteger(L, (lua_Integer)r->used);
  lua_pushinteger(L, (lua_Integer)r->cap);
  return 2;
}

static int rules_tostring(lua_State *L) {
  Rules *r = (Rules *)luaL_checkudata(L, 1, RULES_MT);
  lua_pushfstring(L, "thinkific.Rules (%s)", r->S ? "open" : "closed");
  return 1;
}

/* core.rules_function(v) -> the number of a function a rules file returned | nil */
static int rules_function(lua_State *L) {
  if (lua_type(L, 1) != LUA_TTABLE || !lua_getmetatable(L, 1)) return 0;
  luaL_getmetatable(L, RULES_FUNCTION_MT);
  if (!lua_rawequal(L, -1, -2)) return 0;
  lua_rawgeti(L, 1, 1);
  return 1;
}

void tk_rules_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"load", rules_load}, {"begin", rules_begin},
    {"call", rules_call}, {"finish", rules_finish}, {"memory", rules_memory},
    {"close", rules_close}, {NULL, NULL}};
  static const luaL_Reg metamethods[] = {{"__gc", rules_close}, {"__close", rules_close},
    {"__tostring", rules_tostring}, {NULL, NULL}};
  luaL_newmetatable(L, RULES_MT);
  luaL_setfuncs(L, metamethods, 0);
  luaL_newlib(L, methods);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newmetatable(L, RULES_FUNCTION_MT);
  lua_pop(L, 1);
  lua_pushcfunction(L, rules_new);
  lua_setfield(L, -2, "rules_new");
  lua_pushcfunction(L, rules_function);
  lua_setfield(L, -2, "rules_function");
}

#else

void tk_rules_open(lua_State *L) {
  (void)L; /* LuaJIT: no sandbox (see the top of this file) */
}

#endif
