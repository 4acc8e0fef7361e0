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
  "lua >= 5.1",
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
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA = "$(LUA)",
  },
  install_target = "install-tree",
  install_variables = {
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
  install = {
    bin = { thinkific = "bin/thinkific" },
  },
}
