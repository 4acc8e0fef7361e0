std = "lua54"
max_line_length = 110
files["spec"] = { std = "+busted" }
-- LuaJIT's own table, read where a spec checks which interpreter runs it.
files["spec/interpreter_spec.lua"] = { read_globals = { "jit" } }
files["bench"] = { max_line_length = 120 }
exclude_files = { "build/", "bench/node_modules/" }
-- OpenResty: ngx_lua's API (ngx.*) is a global there.
files["lua/thinkific/ngx.lua"] = { read_globals = { "ngx" } }
files["spec/nginx"] = { read_globals = { "ngx" } }
files["examples/openresty"] = { std = "ngx_lua" }
-- The run script's renderer runs under Lua 5.4, outside nginx.
files["examples/openresty/render.lua"] = { std = "lua54" }
