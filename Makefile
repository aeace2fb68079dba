# mtasts-shim - build, test, demo.
#
#   make            build/libmtasts.a, build/mtasts, build/libmtasts-shim.so
#   make check      every test (unit, integration, end-to-end); needs root for the namespaces
#   make demo       a loopback world with a real Exim enforcing MTA-STS through the shim
#   make fuzz       build the libFuzzer targets (clang) and run each for FUZZ_SECONDS
#   make bench      the benchmarks of bench/
#   make deps       install the Debian 12 packages the build and the tests need

CC      ?= cc
PREFIX  ?= /usr/local
VERSION := 0.1.0
BUILD   := build

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
            -Wno-unused-parameter -Wno-format-truncation
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c11 -fPIC $(WARN) -fstack-protector-strong
CPPFLAGS += -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -Iinclude -DMTASTS_VERSION='"$(VERSION)"' \
            -DMTASTS_PREFIX='"$(PREFIX)"'
LDFLAGS  += -Wl,-z,relro,-z,now

CORE_LIBS := -lcurl -lcares -lssl -lcrypto -lidn2 -lpthread
CLI_LIBS  := $(CORE_LIBS) -ljansson
CHECK_LIBS := $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lm -lrt -lpthread)

CORE_SRCS := $(wildcard core/*.c)
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o)
CLI_SRCS  := $(wildcard cli/*.c)
CLI_OBJS  := $(CLI_SRCS:%.c=$(BUILD)/%.o)
SHIM_SRCS := $(wildcard shim/*.c)
SHIM_OBJS := $(SHIM_SRCS:%.c=$(BUILD)/%.o)
# The shim links only what its hot path needs: no libcurl, no c-ares, no libidn2, and libcrypto
# only at run time (shim/crypto_lazy.c).
SHIM_CORE := $(filter $(addprefix $(BUILD)/core/,status.o domain.o txt.o policy.o cache.o verify.o config.o log.o),$(CORE_OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TEST_HELPERS := $(wildcard tests/helpers/*.c)
TEST_HELPER_BINS := $(TEST_HELPERS:tests/helpers/%.c=$(BUILD)/tests/%)

TARGETS := $(BUILD)/libmtasts.a $(BUILD)/mtasts
ifneq ($(SHIM_SRCS),)
TARGETS += $(BUILD)/libmtasts-shim.so
endif

.PHONY: all check unit integration e2e demo fuzz bench deps install clean
all: $(TARGETS) $(TEST_HELPER_BINS) $(BUILD)/tests/probe

$(BUILD)/%.o: %.c $(wildcard include/mtasts/*.h) $(wildcard core/*.h) $(wildcard shim/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/libmtasts.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mtasts: $(CLI_OBJS) $(BUILD)/libmtasts.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJS) $(BUILD)/libmtasts.a $(CLI_LIBS)

# No -lcrypto: shim/crypto_lazy.c loads libcrypto when a chain is first checked. -z defs makes
# sure nothing else is left for the MTA's own libraries to resolve.
$(BUILD)/libmtasts-shim.so: $(SHIM_OBJS) $(SHIM_CORE) shim/exports.map
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-z,defs -Wl,--version-script=shim/exports.map -o $@ \
	    $(SHIM_OBJS) $(SHIM_CORE) -ldl -lpthread

$(BUILD)/tests/test_%: tests/unit/test_%.c $(BUILD)/libmtasts.a tests/unit/unit.h
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) -Itests/unit $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmtasts.a $(CLI_LIBS) $(CHECK_LIBS)

# probe: driver of core/fetch.c and core/dns.c for tests/integration/test-fetch.sh
$(BUILD)/tests/probe: tests/integration/probe.c $(BUILD)/libmtasts.a
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libmtasts.a $(CLI_LIBS)

$(BUILD)/tests/%: tests/helpers/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< -lssl -lcrypto -lresolv

# check and demo install missing packages first, so that both work on a fresh Debian 12.
check:
	scripts/deps
	$(MAKE) all $(UNIT_BINS)
	tests/run-all.sh $(BUILD)

unit: all $(UNIT_BINS)
	tests/run-all.sh $(BUILD) unit

integration: all
	tests/run-all.sh $(BUILD) integration

e2e: all
	tests/run-all.sh $(BUILD) e2e

demo:
	scripts/deps
	$(MAKE) all
	scripts/demo.sh $(BUILD)

# make fuzz [FUZZ_SECONDS=n] [FUZZ_TARGETS="cache smtpscan"]: build tests/fuzz/fuzz_<t>.c with
# the core sources plus FUZZ_EXTRA_<t> (shim sources, libraries), run each for FUZZ_SECONDS on
# tests/fuzz/corpus/<t>; a crash stops make (input saved as build/fuzz/<t>-crash-*).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_EXTRA_dnsanswer := shim/dnsobs.c -lresolv
FUZZ_EXTRA_smtpscan := shim/smtpscan.c

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_SRCS) $(SHIM_SRCS) $(wildcard include/mtasts/*.h core/*.h shim/*.h)
	@mkdir -p $(dir $@)
	clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iinclude -Ishim -std=c11 \
	    -DMTASTS_VERSION='"$(VERSION)"' -DMTASTS_PREFIX='"$(PREFIX)"' \
	    -o $@ $< $(CORE_SRCS) $(FUZZ_EXTRA_$*) $(CORE_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)/fuzz/corpus-$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS)s"; \
	  $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -max_len=70000 \
	    -artifact_prefix=$(BUILD)/fuzz/$$t- $(BUILD)/fuzz/corpus-$$t tests/fuzz/corpus/$$t \
	    > $(BUILD)/fuzz/$$t.log 2>&1 || { tail -n 40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
	  grep -E 'DONE|^Done' $(BUILD)/fuzz/$$t.log || true; \
	done

bench: all
	$(MAKE) -C bench BUILD=../$(BUILD)

deps:
	scripts/deps

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/mtasts $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 0755 $(BUILD)/mtasts $(DESTDIR)$(PREFIX)/bin/mtasts
	install -m 0755 scripts/mtasts-run $(DESTDIR)$(PREFIX)/bin/mtasts-run
	install -m 0755 scripts/mtasts-install $(DESTDIR)$(PREFIX)/bin/mtasts-install
	install -m 0644 man/mtasts.1 man/mtasts-run.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	[ ! -f $(BUILD)/libmtasts-shim.so ] || install -m 0755 $(BUILD)/libmtasts-shim.so $(DESTDIR)$(PREFIX)/lib/mtasts/

clean:
	rm -rf $(BUILD)
