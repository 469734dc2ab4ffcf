# rawpunch — TCP NAT traversal toolkit.  Style after wireguard-tools' src/Makefile.
#
#   make            build rawpunch and the lab/bench helpers
#   make test       unit tests (ASan+UBSan) then lab integration tests (root)
#   make deps       apt-get install whatever Debian packages build, tests, lab and demo need
#   make bench-deps the benchmarks' reference tools (masscan, zmap, hping3, nmap) and AFL++
#   make demo       bring up a NAT lab and show rawpunch working in it (root)
#   make fuzz       build libFuzzer harnesses (clang) into build/fuzz/
#   make install    rawpunch, rawpunch(1) and bash completion; PREFIX=/usr/local DESTDIR=
#
# V=1 shows the commands.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
COMPLETIONDIR ?= $(PREFIX)/share/bash-completion/completions
BUILD ?= build

CC ?= cc
PKG_CONFIG ?= pkg-config
PKGS := libpcap libsodium json-c libnftables libcap nettle

ifneq ($(V),1)
Q = @
MSG = @printf '  %-8s %s\n'
else
Q =
MSG = @true
endif

# libnet (1.1.6 in Debian) ships no .pc file: fall back to libnet-config.
LIBNET_CFLAGS := $(filter-out -D_BSD_SOURCE -D__BSD_SOURCE,$(shell $(PKG_CONFIG) --cflags libnet 2>/dev/null || libnet-config --defines 2>/dev/null))
LIBNET_LIBS   := $(shell $(PKG_CONFIG) --libs libnet 2>/dev/null || libnet-config --libs 2>/dev/null || echo -lnet)
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CMOCKA_CFLAGS := $(shell $(PKG_CONFIG) --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wno-missing-field-initializers
HARDEN := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fstack-clash-protection -fPIE \
          -fcf-protection
HARDEN_LD := -pie -Wl,-z,relro,-z,now,-z,noexecstack
CFLAGS ?= -O2 -g
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -MMD -MP -I. $(WARN) $(PKG_CFLAGS)
# Port mapping clients (rawpunch/portmap/): libminiupnpc has a .pc file, libnatpmp (Debian) none.
MINIUPNPC_LIBS := $(shell $(PKG_CONFIG) --libs miniupnpc 2>/dev/null || echo -lminiupnpc)
# The secret-strength estimate (rendezvous/proto.c): zxcvbn-c ships no .pc file either.
ZXCVBN_LIBS := $(shell $(PKG_CONFIG) --libs zxcvbn 2>/dev/null || echo -lzxcvbn)
LDLIBS_ALL := $(LIBNET_LIBS) $(PKG_LIBS) $(MINIUPNPC_LIBS) -lnatpmp $(ZXCVBN_LIBS) -lpthread -lm

SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all

# The library is every stage folder of rawpunch/ plus capture/ and userstack/; the CLI (rawpunch/cli/)
# is the program on top of it and is not archived. HACKING.md has the layers; tools/check-layers
# (run before anything compiles) refuses an #include that points up, and libpcap/libnet outside
# capture/ and rawpunch/net/.
US_SRC  := $(sort $(wildcard userstack/*.c))
CAP_SRC := $(sort $(wildcard capture/*.c))
RP_SRC  := $(sort $(filter-out rawpunch/cli/%,$(wildcard rawpunch/*/*.c)))
CLI_SRC := $(sort $(wildcard rawpunch/cli/*.c))
LIB_SRC := $(US_SRC) $(CAP_SRC) $(RP_SRC)
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC := $(sort $(wildcard tools/*.c))
BENCH_SRC := $(sort $(wildcard tools/bench/*.c))
FUZZ_SRC := $(sort $(wildcard tools/fuzz/fuzz_*.c))

REL_OBJ := $(LIB_SRC:%.c=$(BUILD)/rel/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/rel/%.o)
# Tools and benches print like the CLI does (rp_err, rp_hint): they link its message module only.
MSG_OBJ := $(BUILD)/rel/rawpunch/cli/cli.o
SAN_OBJ := $(LIB_SRC:%.c=$(BUILD)/san/%.o)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_BIN := $(TOOL_SRC:tools/%.c=$(BUILD)/%)
BENCH_BIN := $(BENCH_SRC:tools/bench/%.c=$(BUILD)/bench/%)
FUZZ_BIN := $(FUZZ_SRC:tools/fuzz/%.c=$(BUILD)/fuzz/%)

all: $(BUILD)/rawpunch $(BUILD)/rawpunch.1 $(TOOL_BIN) $(BENCH_BIN)

# The man page is made from the binary's own --help texts (tools/gen-man), one section per command.
$(BUILD)/rawpunch.1: $(BUILD)/rawpunch tools/gen-man
	$(MSG) MAN $@
	$(Q)tools/gen-man $(BUILD)/rawpunch $@

# Layering, checked before any object is built (an order-only prerequisite of every object).
LAYER_SRC := $(sort $(wildcard userstack/*.[ch] capture/*.[ch] rawpunch/*/*.[ch]))
$(BUILD)/layers.ok: tools/check-layers $(LAYER_SRC)
	$(MSG) LAYERS $@
	@mkdir -p $(@D)
	$(Q)tools/check-layers && touch $@

# userstack/ is pure logic: it is compiled without the libpcap/libnet flags, so an #include of
# either would not even find their configuration.
US_CFLAGS := -std=c11 -D_GNU_SOURCE -MMD -MP -I. $(WARN) $(shell $(PKG_CONFIG) --cflags libsodium 2>/dev/null)

$(BUILD)/rel/userstack/%.o: userstack/%.c | $(BUILD)/layers.ok
	$(MSG) CC $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(US_CFLAGS) $(HARDEN) $(CFLAGS) -c -o $@ $<

$(BUILD)/san/userstack/%.o: userstack/%.c | $(BUILD)/layers.ok
	$(MSG) CC-SAN $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(US_CFLAGS) $(SAN) -O1 -g -c -o $@ $<

$(BUILD)/rel/%.o: %.c | $(BUILD)/layers.ok
	$(MSG) CC $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(LIBNET_CFLAGS) $(HARDEN) $(CFLAGS) -c -o $@ $<

$(BUILD)/san/%.o: %.c | $(BUILD)/layers.ok
	$(MSG) CC-SAN $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(BASE_CFLAGS) $(LIBNET_CFLAGS) $(CMOCKA_CFLAGS) $(SAN) -O1 -g -c -o $@ $<

$(BUILD)/librawpunch.a: $(REL_OBJ)
	$(MSG) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/librawpunch-san.a: $(SAN_OBJ)
	$(MSG) AR $@
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/rawpunch: $(CLI_OBJ) $(BUILD)/librawpunch.a
	$(MSG) LD $@
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/%: $(BUILD)/rel/tools/%.o $(MSG_OBJ) $(BUILD)/librawpunch.a
	$(MSG) LD $@
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/bench/%: $(BUILD)/rel/tools/bench/%.o $(MSG_OBJ) $(BUILD)/librawpunch.a
	$(MSG) LD $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(HARDEN_LD) $(LDFLAGS) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/tests/%: $(BUILD)/san/tests/unit/%.o $(BUILD)/librawpunch-san.a
	$(MSG) LD $@
	@mkdir -p $(@D)
	$(Q)$(CC) $(SAN) -o $@ $^ $(CMOCKA_LIBS) $(LDLIBS_ALL)

# libFuzzer harnesses: clang, ASan+UBSan, linked against the sanitised sources they exercise. They
# are built in one step without .d files, so they depend on every library header too (the cursor,
# the checksum updates and the burst's stamping are inline code in headers).
FUZZ_CC ?= clang
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) $(LIBNET_CFLAGS)
LIB_HDR := $(sort $(wildcard userstack/*.h capture/*.h rawpunch/*/*.h))
$(BUILD)/fuzz/%: tools/fuzz/%.c $(LIB_SRC) $(LIB_HDR)
	$(MSG) FUZZ $@
	@mkdir -p $(@D)
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(LIB_SRC) $(LDLIBS_ALL)

fuzz: $(FUZZ_BIN)

units: $(UNIT_BIN)

# `make test` is what CI and README name: deps, build, unit tests, then the lab. The build runs in a
# second make so that pkg-config is asked again after `deps` may have installed the libraries.
test: deps
	$(Q)$(MAKE) --no-print-directory check

check: all units
	$(Q)tests/run-unit $(UNIT_BIN)
	$(Q)tests/run-lab

test-unit: all units
	$(Q)tests/run-unit $(UNIT_BIN)

test-lab: all
	$(Q)tests/run-lab $(T)

deps:
	$(Q)tools/deps

bench-deps:
	$(Q)tools/bench-deps

demo: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)tools/demo

install: $(BUILD)/rawpunch $(BUILD)/rawpunch.1
	@install -v -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)/man1" "$(DESTDIR)$(COMPLETIONDIR)"
	@install -v -m 0755 $(BUILD)/rawpunch "$(DESTDIR)$(BINDIR)/rawpunch"
	@install -v -m 0644 $(BUILD)/rawpunch.1 "$(DESTDIR)$(MANDIR)/man1/rawpunch.1"
	@install -v -m 0644 tools/completion/rawpunch.bash "$(DESTDIR)$(COMPLETIONDIR)/rawpunch"

uninstall:
	@rm -fv "$(DESTDIR)$(BINDIR)/rawpunch" "$(DESTDIR)$(MANDIR)/man1/rawpunch.1" "$(DESTDIR)$(COMPLETIONDIR)/rawpunch"

clean:
	$(Q)rm -rf $(BUILD)

.PHONY: uninstall all test check test-unit test-lab units deps bench-deps demo install clean fuzz
.SECONDARY:

# Every object's header dependencies, programs' and tests' included (a struct changed in a header must
# rebuild the tools that embed it).
-include $(REL_OBJ:.o=.d) $(SAN_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TOOL_SRC:%.c=$(BUILD)/rel/%.d) \
	$(BENCH_SRC:%.c=$(BUILD)/rel/%.d) $(UNIT_SRC:%.c=$(BUILD)/san/%.d)
