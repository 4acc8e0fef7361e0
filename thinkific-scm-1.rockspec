package = "thinkific"
version = "scm-1"
source = {
  -- Installed from a checkout: luarocks --lua-version=5.4 make --deps-mode=none
  url = "git+https://github.com/lua-thinkific/lua-thinkific.git",
}
description = {
  summary = "Thinkific Webhooks API for Lua: a C core over libcurl, a router, a sandbox",
  detailed = [[
    Lists, creates, updates and deletes Thinkific webhooks and reads events over libcurl with
    keep-alive, turns JSON into plain Lua tables (integers stay integers), signs and verifies
    webhook deliveries, and ships a local Thinkific-compatible sandbox.
  ]],
  license = "MIT",
}
dependencies = {
  -- The C core builds against the headers of Lua 5.1 to 5.4 (5.1: LuaJIT 2.1, as OpenResty
  -- has it); 5.5 changes the C API it uses.
  "lua >= 5.1, < 5.5",
  "lua-cjson",
  "luasocket",
  "luasec",
  "argparse",
}
external_dependencies = {
  -- The header lives in the multiarch include directory: check the library only.
  CURL = { library = "curl" },
  OPENSSL = { library = "crypto" },
}
build = {
  type = "make",
  -- The same variables for both steps, so that the install finds the build's own directory.
  -- No -Werror for users: a newer compiler's new warning must not fail their install.
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    WARNINGS = "-Wall -Wextra",
  },
  install_target = "install-tree",
  install_variables = {
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
    WARNINGS = "-Wall -Wextra",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
  install = {
    bin = { thinkific = "bin/thinkific" },
  },
}
