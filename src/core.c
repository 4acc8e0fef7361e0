/* thinkific.core: the C core of lua-thinkific. Each concept lives in its own file
 * (doc/DESIGN.md lists them); each registers its functions here, in any order. */
#include "core.h"

#define TK_EXPORT __attribute__((visibility("default")))

TK_EXPORT int luaopen_thinkific_core(lua_State *L) {
  lua_newtable(L);
  tk_error_open(L);
  tk_clock_open(L);
  tk_json_decode_open(L);
  tk_json_encode_open(L);
  tk_response_open(L);
  tk_transfer_open(L);
  tk_client_open(L);
  tk_send_open(L);
  tk_hmac_open(L);
  tk_rules_open(L);
  return 1;
}
