# lua-thinkific build. `make` builds the C core for Lua 5.4 into build/5.4/.
LUA          ?= lua5.4
LUA_PC       ?= lua5.4
LUA_VERSION  ?= 5.4
BUSTED       ?= /usr/bin/busted

# Lua's headers: LUA_INCDIR when given (luarocks passes the directory it found, for whichever
# Lua it builds for), else pkg-config's name for them. A luarocks build gets a directory of its
# own per Lua, so that objects built for one Lua are never linked for another.
LUA_INCDIR   ?=
ifneq ($(strip $(LUA_INCDIR)),)
LUA_CFLAGS   := -I$(LUA_INCDIR)
BUILD        ?= build/rock-$(notdir $(LUA_INCDIR))
else
LUA_CFLAGS   := $(shell pkg-config --cflags $(LUA_PC))
BUILD        ?= build/$(LUA_VERSION)
endif

DEP_CFLAGS := $(shell pkg-config --cflags libcurl openssl 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs libcurl openssl 2>/dev/null || echo -lcurl -lssl -lcrypto)

# CFLAGS and WARNINGS are the caller's to replace (luarocks passes its own CFLAGS on the command
# line); what the build needs is added after them, so it cannot be lost. -Werror is for this
# project's own builds and CI: the rockspec passes WARNINGS without it, so a user's newer
# compiler with a new warning still builds.
CFLAGS   ?= -O2 -g
WARNINGS ?= -Wall -Wextra -Werror
ALL_CFLAGS = $(CFLAGS) -std=c99 -fPIC -fvisibility=hidden $(WARNINGS) \
             -D_POSIX_C_SOURCE=200809L $(LUA_CFLAGS) $(DEP_CFLAGS)
LIBFLAG  ?= -shared

SRCS := $(wildcard src/*.c)
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
CORE := $(BUILD)/thinkific/core.so

# Spec files written in Lua 5.4 syntax or about Lua 5.4 tools (the sandbox, the receiver):
# a busted pattern, kept out of the LuaJIT run.
LUA54_ONLY_SPECS ?= _lua54_spec%.lua$$

# Paths that let specs, examples and tools run from the source tree. Lua 5.4 reads the _5_4
# variables, LuaJIT the plain ones; child processes in Lua 5.4 (the sandbox) inherit both.
LUA_TREE = $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
RUN_ENV = LUA_PATH_5_4="$(LUA_TREE)" LUA_CPATH_5_4="$(CURDIR)/build/5.4/?.so;;"
LUAJIT_ENV = $(RUN_ENV) LUA_PATH="$(LUA_TREE)" LUA_CPATH="$(CURDIR)/build/luajit/?.so;;"

.PHONY: all luajit test test-lua54 test-luajit test-nginx check lint demo bench clean install install-tree
all: $(CORE)

# The same sources for LuaJIT 2.1 (Debian's luajit2; OpenResty), in their own directory.
luajit:
	@$(MAKE) --no-print-directory LUA=luajit LUA_PC=luajit LUA_VERSION=luajit all

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(CORE): $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $@ $(OBJS) $(DEP_LIBS) $(LIBS)

test: test-lua54 test-luajit test-nginx

test-lua54: $(CORE)
	@echo "== specs under Lua 5.4"
	$(RUN_ENV) THINKIFIC_SPEC_LUA=5.4 $(LUA) $(BUSTED) --lpath="" --cpath="" spec

# Every spec that is not about Lua 5.4 itself (#lua54: integers, <close>, in-process servers).
test-luajit: $(CORE) luajit
	@echo "== specs under LuaJIT"
	$(LUAJIT_ENV) THINKIFIC_SPEC_LUA=luajit luajit $(BUSTED) --lpath="" --cpath="" --exclude-tags=lua54 \
	  --exclude-pattern="$(LUA54_ONLY_SPECS)" spec

# Real nginx (Debian's nginx with ngx_lua on LuaJIT) loading build/luajit: the receiver, the
# transport, the shared-dict store, the example config. The specs (spec/nginx/*_ngx.lua, under
# Lua 5.4) start their own nginx on ports picked at run time and the sandbox.
test-nginx: $(CORE) luajit
	@echo "== the nginx suite"
	$(RUN_ENV) $(LUA) $(BUSTED) --lpath="" --cpath="" --pattern=_ngx spec/nginx

# The memory pass: the C-heavy specs under valgrind with garbage collection forced after each test.
check: $(CORE)
	$(RUN_ENV) THINKIFIC_FORCE_GC=1 valgrind --error-exitcode=1 --leak-check=full \
	  --errors-for-leak-kinds=definite --quiet \
	  $(LUA) $(BUSTED) --lpath="" --cpath="" --tags=memory spec

# The sanitizer pass: the core built by clang with AddressSanitizer and UndefinedBehaviorSanitizer
# (float-cast-overflow named: -fsanitize=undefined leaves it out; no recovery, so any finding
# fails) into build/asan, run by Debian's lua5.4 with clang's runtime preloaded: every Lua 5.4
# spec, then the specs of C-heavy code (#memory) again with the collector stressed
# (THINKIFIC_GC_STRESS, spec/helper.lua) so that a pointer used after a collection freed its
# string shows. The whole suite stressed takes well over half an hour; these two passes minutes.
# Clang: its runtime is one preloadable library holding both sanitizers, the toolchain of make
# fuzz. Only Lua processes get it: build/asan/bin/lua5.4, first on PATH, starts Debian's lua5.4
# through the dynamic loader's --preload, which (unlike LD_PRELOAD) no child inherits. So every
# Lua process the specs start (the sandbox, the command, the inbox's workers: all run
# "lua5.4") has the sanitizers, and other programs run as they are (with the runtime, bash, ps
# and PostgreSQL hang in LLVM 14's textdomain interceptor, and coreutils report their leaks).
# Reports go into build/asan/log: any report fails the run, and is shown.
ASAN_CC       ?= clang
ASAN_FLAGS    := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all
ASAN_CFLAGS   ?= -O1 -g -fno-omit-frame-pointer
ASAN_SPECS    ?= spec
# The stressed pass: the specs of the C code that handles Lua strings (errors, JSON, headers,
# signatures, requests), where "freed too early" bugs live; all #memory specs stressed take
# far longer than CI's half hour (the valgrind pass covers them with a collection per test).
ASAN_STRESSED ?= --tags=memory spec/uaf_spec.lua spec/nul_bytes_spec.lua spec/json_limits_spec.lua \
  spec/huge_numbers_spec.lua spec/json_spec.lua spec/errors_spec.lua spec/signature_spec.lua \
  spec/security_spec.lua spec/client_methods_spec.lua spec/send_spec.lua
ASAN_LOG       = $(CURDIR)/build/asan/log
ASAN_REPORT    = log_path=$(ASAN_LOG)/report:print_suppressions=0
# intercept_tls_get_addr=0: LLVM 14's leak check misreads glibc 2.36's dynamic TLS and dies
# ("Tracer caught signal 11") in a process that loaded OpenSSL.
ASAN_LDSO     ?= /lib64/ld-linux-x86-64.so.2
ASAN_BIN       = $(CURDIR)/build/asan/bin
ASAN_RUN = PATH="$(ASAN_BIN):$$PATH" \
  ASAN_OPTIONS="$(ASAN_REPORT):allocator_may_return_null=1:detect_leaks=1:intercept_tls_get_addr=0" \
  UBSAN_OPTIONS="$(ASAN_REPORT):print_stacktrace=1" \
  LSAN_OPTIONS="$(ASAN_REPORT):suppressions=$(CURDIR)/scripts/lsan.supp" \
  LUA_PATH_5_4="$(LUA_TREE)" LUA_CPATH_5_4="$(CURDIR)/build/asan/?.so;;" THINKIFIC_SPEC_LUA=asan \
  lua5.4 $(BUSTED) --lpath="" --cpath=""

.PHONY: asan
asan:
	@$(MAKE) --no-print-directory CC=$(ASAN_CC) CFLAGS="$(ASAN_CFLAGS) $(ASAN_FLAGS)" \
	  LDFLAGS="$(ASAN_FLAGS)" BUILD=build/asan all
	@rm -rf $(ASAN_LOG) && mkdir -p $(ASAN_LOG) $(ASAN_BIN)
	@printf '#!/bin/sh\nexec %s --preload %s --argv0 lua5.4 %s "$$@"\n' "$(ASAN_LDSO)" \
	  "$$($(ASAN_CC) -print-file-name=libclang_rt.asan-x86_64.so)" "$$(command -v $(LUA))" \
	  > $(ASAN_BIN)/lua5.4 && chmod +x $(ASAN_BIN)/lua5.4
	@status=0; \
	echo "== specs under Lua 5.4 with ASan and UBSan (build/asan)"; \
	$(ASAN_RUN) $(ASAN_SPECS) || status=1; \
	echo "== the same, the collector stressed: $(ASAN_STRESSED)"; \
	THINKIFIC_GC_STRESS=1 $(ASAN_RUN) $(ASAN_STRESSED) || status=1; \
	if [ -n "$$(ls -A $(ASAN_LOG))" ]; then cat $(ASAN_LOG)/*; echo "make asan: sanitizer reports above"; exit 1; fi; \
	exit $$status

# Fuzzing (make fuzz): libFuzzer targets, one per fuzz/targets/<name>.lua, each the driver
# fuzz/driver.c with the core's sources built in, all under AddressSanitizer and UBSan, on
# Debian's clang and lua5.4, with Debian's lua-cjson loaded as the core loads it. A short fixed
# number of runs per target (CI), or FUZZ_SECONDS each; FUZZ_GC=normal for Lua's own collector
# settings instead of one that never rests (faster, blind to most "freed too early" bugs). An
# input that crashes is copied into fuzz/regressions/<name>/ (fuzz/run.sh), which
# spec/fuzz_regressions_spec.lua replays.
FUZZ_TARGETS ?= decode encode sign_verify response headers request router
FUZZ_RUNS    ?= 10000
FUZZ_SECONDS ?=
FUZZ_GC      ?= stress
FUZZ_CC      ?= clang
FUZZ_DIR     ?= build/fuzz
FUZZ_SAN     ?= -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Werror $(FUZZ_SAN) \
                $(shell pkg-config --cflags lua5.4) $(DEP_CFLAGS)
FUZZ_CJSON    = $(dir $(shell lua5.4 -e 'print(package.searchpath("cjson", package.cpath))'))
FUZZ_OBJS    := $(SRCS:src/%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_LIMIT   := $(if $(FUZZ_SECONDS),-max_total_time=$(FUZZ_SECONDS),-runs=$(FUZZ_RUNS))

.PHONY: fuzz fuzz-build
.SECONDARY: $(FUZZ_OBJS)
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_DIR)/%)

$(FUZZ_DIR)/obj/%.o: src/%.c $(wildcard src/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_DIR)/%: fuzz/driver.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -DFUZZ_TARGET='"$*"' -DFUZZ_ROOT='"$(CURDIR)"' \
	  -DFUZZ_CJSON_DIR='"$(FUZZ_CJSON:%/=%)"' -o $@ fuzz/driver.c $(FUZZ_OBJS) \
	  $(shell pkg-config --libs lua5.4) $(DEP_LIBS) -lm

# Every target runs, even after one crashed; the run fails when any did.
fuzz: fuzz-build
	lua5.4 fuzz/seeds.lua $(FUZZ_DIR)/corpus
	@failed=""; for t in $(FUZZ_TARGETS); do \
	  echo "== fuzz $$t"; \
	  FUZZ_GC=$(FUZZ_GC) sh fuzz/run.sh $(FUZZ_DIR) $$t $(FUZZ_LIMIT) || failed="$$failed $$t"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: crashes in$$failed"; exit 1; fi

lint:
	luacheck lua spec examples bench fuzz bin/thinkific
	cppcheck --quiet --error-exitcode=1 --enable=warning,style,performance,portability \
	  --inline-suppr --suppress=missingIncludeSystem --suppress=toomanyconfigs $(LUA_CFLAGS) $(DEP_CFLAGS) src

demo: $(CORE)
	$(RUN_ENV) $(LUA) examples/quickstart.lua

bench: $(CORE) luajit
	$(RUN_ENV) LUA=$(LUA) sh bench/run.sh

install: $(CORE)
	luarocks --lua-version=$(LUA_VERSION) make --deps-mode=none thinkific-scm-1.rockspec

# Used by the rockspec: luarocks passes the rock's own lib and lua directories.
install-tree: $(CORE)
	mkdir -p $(INST_LIBDIR)/thinkific $(INST_LUADIR)
	cp $(CORE) $(INST_LIBDIR)/thinkific/core.so
	cp -R lua/thinkific $(INST_LUADIR)/

clean:
	rm -rf build
