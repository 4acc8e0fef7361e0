/* Shared declarations of the thinkific.core C module. */
#ifndef THINKIFIC_CORE_H
#define THINKIFIC_CORE_H

#include <stddef.h>
#include "compat.h"

#define TK_ERROR_MT "thinkific.Error"
#define TK_CLIENT_MT "thinkific.Client"
#define TK_ARRAY_MT "thinkific.array"
#define TK_MAX_DEPTH 1000
#define TK_ERROR_BODY_MAX 4096

/* Each file registers its functions into the module table at the top of the stack. */
void tk_error_open(lua_State *L);
void tk_json_decode_open(lua_State *L);
void tk_json_encode_open(lua_State *L);
void tk_util_open(lua_State *L);
void tk_client_open(lua_State *L);
void tk_transport_curl_open(lua_State *L);
void tk_transport_multi_open(lua_State *L);
void tk_response_open(lua_State *L);
void tk_hmac_open(lua_State *L);

/* Pushes a new error table {kind = kind, message = message} with the error metatable. */
void tk_push_error(lua_State *L, const char *kind, const char *message);
/* Sets t[field] = value on the table at the top of the stack. */
void tk_set_string(lua_State *L, const char *field, const char *value);
void tk_set_lstring(lua_State *L, const char *field, const char *value, size_t len);
void tk_set_whole(lua_State *L, const char *field, long long value);
void tk_set_bool(lua_State *L, const char *field, int value);

/* Decodes the JSON string at idx into a Lua value pushed on the stack (1), or pushes an
 * error message (0). */
int tk_json_decode(lua_State *L, int idx);
/* The value of an HTTP answer: pushes value (1) or nil, err (2). body_idx: a string; headers:
 * a table index or 0; method, path: stack indices copied into errors. */
int tk_push_result(lua_State *L, long status, int body_idx, int headers, int want_object,
                   int method, int path);
/* Encodes the value at idx as JSON and pushes the text (1), or pushes an error message (0). */
int tk_json_encode(lua_State *L, int idx);

/* Percent-encodes one path segment into the buffer (bytes outside A-Z a-z 0-9 - _ ~); or into
 * out, which has room for 3 * len bytes, returning the bytes written. */
void tk_add_escaped(luaL_Buffer *b, const char *s, size_t len);
size_t tk_escape(char *out, const char *s, size_t len);

/* Wall-clock seconds since the epoch (float) and monotonic seconds. */
double tk_wall_time(void);
double tk_monotonic_time(void);

#endif
