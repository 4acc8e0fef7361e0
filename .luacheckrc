std = "lua54"
max_line_length = 110
files["spec"] = { std = "+busted" }
files["bench"] = { max_line_length = 120 }
exclude_files = { "build/", "bench/node_modules/" }
