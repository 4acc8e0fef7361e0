/* Shared declarations of the thinkific.core C module. */
#ifndef THINKIFIC_CORE_H
#define THINKIFIC_CORE_H

#include <stddef.h>
#include "compat.h"

#define TK_ERROR_MT "thinkific.Error"
#define TK_CLIENT_MT "thinkific.Client"
#define TK_ARRAY_MT "thinkific.array"
#define TK_MAX_DEPTH 1000 /* levels of nesting, for decode and encode alike */
/* The text of a number macro, for messages: TK_STRING(TK_MAX_DEPTH) is "1000". */
#define TK_STRING_(x) #x
#define TK_STRING(x) TK_STRING_(x)
#define TK_ERROR_BODY_MAX 4096

/* Each file registers its functions into the module table at the top of the stack; none
 * depends on another having run first. */
void tk_error_open(lua_State *L);
void tk_clock_open(lua_State *L);
void tk_json_decode_open(lua_State *L);
void tk_json_encode_open(lua_State *L);
void tk_response_open(lua_State *L);
void tk_transfer_open(lua_State *L);
void tk_client_open(lua_State *L);
void tk_send_open(lua_State *L);
void tk_hmac_open(lua_State *L);
void tk_rules_open(lua_State *L);

/* error.c: pushes a new error table {kind = kind, message = message} with the error metatable. */
void tk_push_error(lua_State *L, const char *kind, const char *message);

/* fields.c: sets t[field] = value on the table at the top of the stack. */
void tk_set_string(lua_State *L, const char *field, const char *value);
void tk_set_lstring(lua_State *L, const char *field, const char *value, size_t len);
void tk_set_integer(lua_State *L, const char *field, long long value);
void tk_set_bool(lua_State *L, const char *field, int value);
/* fields.c: whether the len bytes at s hold no CR, LF or NUL (may go into a header line). */
int tk_one_line(const char *s, size_t len);
/* fields.c: strcmp for bytes with lengths (a Lua string may hold a NUL): <0, 0 or >0. */
int tk_compare_bytes(const char *a, size_t alen, const char *b, size_t blen);
/* fields.c: t[field] of the settings table at stack index arg, or "bad argument #arg": a string
 * without CR, LF or NUL (nothing it goes into can gain a header line), left on the stack; a
 * positive number. When optional and absent: NULL (nil left on the stack), 0. */
const char *tk_check_line_field(lua_State *L, int arg, const char *field, int optional);
double tk_check_positive_field(lua_State *L, int arg, const char *field, int optional);
/* fields.c: a required positive field as a byte count: SIZE_MAX (no limit) for any larger. */
size_t tk_check_size_field(lua_State *L, int arg, const char *field);

/* number.c, the one home of the integer rule (lua/thinkific/integer.lua is Lua's).
 * 2^53: every integer up to it is exact in a double; beyond, doubles skip integers. */
#define TK_MAX_EXACT 9007199254740992.0
/* Whether n has an integral value within +-2^53 (so it prints exactly as an integer). */
int tk_integral(lua_Number n);
/* The text of the id at idx: a string as it is, an integer (or an integral float within
 * +-2^53) with every digit, written into num; NULL for anything else. *len gets its length. */
#define TK_ID_TEXT_SIZE 32
const char *tk_id_text(lua_State *L, int idx, char num[TK_ID_TEXT_SIZE], size_t *len);

/* Decodes the JSON string at idx, the whole of it (only whitespace after the value), into a
 * Lua value pushed on the stack (1), or pushes an error message (0). */
int tk_json_decode(lua_State *L, int idx);
/* The value of an HTTP answer: pushes value (1) or nil, err (2). body_idx: a string; headers:
 * a table index or 0; method, path: stack indices copied into errors. */
int tk_push_result(lua_State *L, long status, int body_idx, int headers, int want_object,
                   int method, int path);
/* Encodes the value at idx as JSON and pushes the text (1), or pushes an error message (0). */
int tk_json_encode(lua_State *L, int idx);

/* clock.c: wall-clock seconds since the epoch (float) and monotonic seconds. */
double tk_wall_time(void);
double tk_monotonic_time(void);

#endif
