/* thinkific.core: the C core of lua-thinkific. Each concept lives in its own file. */
#include "core.h"

#define TK_EXPORT __attribute__((visibility("default")))

TK_EXPORT int luaopen_thinkific_core(lua_State *L) {
  lua_newtable(L);
  tk_error_open(L);
  tk_util_open(L);
  tk_json_decode_open(L);
  tk_json_encode_open(L);
  tk_response_open(L);
  tk_client_open(L);
  tk_transport_curl_open(L);
  tk_transport_multi_open(L);
  tk_hmac_open(L);
  return 1;
}
