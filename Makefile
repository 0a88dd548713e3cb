# Clone: make run | make check (also: deps, all, guest, bench, fuzz, clean)
# Everything lands in build/ (build/san/ for the sanitizer build, build/fuzz/
# for the fuzzers: make fuzz FUZZ_TIME=seconds per harness, default 60).

SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build/san
SANFLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD ?= build
SANFLAGS =
endif

CC ?= cc
# Debian's own Python, which sees the python3-* packages `make deps`
# installs (paramiko for the pre-auth tests); a python3 earlier on PATH
# (pyenv, a venv) may not.
PYTHON ?= /usr/bin/python3
# libssh's flags go to sshd/ objects only: nothing else may include it
# (make layers, which every build runs, refuses one that does).
PKGS = libsodium inih libseccomp
SSH_PKG = libssh
SSH_CFLAGS = $(shell pkg-config --cflags $(SSH_PKG) 2>/dev/null)
WARN = -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wpointer-arith -Wcast-qual -Wwrite-strings -Wformat=2 -Wvla -Wundef \
	-Wimplicit-fallthrough -Wnull-dereference -Wswitch-enum
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -I. $(WARN) -fstack-protector-strong \
	-D_FORTIFY_SOURCE=2 -fPIE $(SANFLAGS) $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDFLAGS += -pie -Wl,-z,relro,-z,now $(SANFLAGS)
LDLIBS = $(shell pkg-config --libs $(PKGS) $(SSH_PKG) 2>/dev/null) -lpthread

# Every module but the program entry and the subcommands in tools/ (boot,
# template, run, bench-clones) goes into a library the tests link.
LIB_SRC = $(wildcard common/*.c config/*.c console/*.c vmm/*.c \
	vmm/virtio/*.c vmm/x86/*.c) \
	$(filter-out sshd/main.c,$(wildcard sshd/*.c))
MAIN_SRC = sshd/main.c $(wildcard tools/*.c)
LIB_OBJ = $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ = $(MAIN_SRC:%.c=$(BUILD)/obj/%.o)
UNIT_SRC = $(wildcard tests/unit/test_*.c)
UNIT_BIN = $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)

# libFuzzer harnesses (tests/fuzz/fuzz_*.c), linked with the modules they
# exercise, built again with clang and the fuzzer's instrumentation.
FUZZ_TIME ?= 60
FUZZ_CC ?= clang
FUZZ_DIR = build/fuzz
FUZZ_CFLAGS = -O1 -g -std=c11 -D_GNU_SOURCE -I. $(WARN) \
	-fsanitize=address,undefined -fno-sanitize-recover=all \
	-fno-omit-frame-pointer $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
FUZZ_LIB_SRC = common/log.c common/text.c config/config.c console/agent_proto.c \
	sshd/authkeys.c vmm/snapshot.c vmm/snapshot_check.c \
	vmm/virtio/console.c vmm/virtio/mmio.c vmm/virtio/virtq.c
FUZZ_LIB_SRC += vmm/bus.c vmm/x86/decode.c vmm/x86/emul.c vmm/x86/mmu.c vmm/ctl_proto.c vmm/x86/cmdline.c vmm/x86/cpu_flags.c
FUZZ_LIB_OBJ = $(FUZZ_LIB_SRC:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_SRC = $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN = $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_DIR)/%)

.PHONY: all deps guest check unit integration bench fuzz run clean layers
all: layers $(BUILD)/clone

# The include rules of the layout (tests/layers.sh says which).
layers:
	@sh tests/layers.sh

$(BUILD)/clone: $(MAIN_OBJ) $(BUILD)/libclone.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libclone.a: $(LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/sshd/%.o: CFLAGS += $(SSH_CFLAGS)
$(FUZZ_DIR)/obj/sshd/%.o: FUZZ_CFLAGS += $(SSH_CFLAGS)
# Tests and harnesses of sshd/ modules include its headers.
$(BUILD)/tests/%: CFLAGS += $(SSH_CFLAGS)
$(FUZZ_DIR)/fuzz_%: FUZZ_CFLAGS += $(SSH_CFLAGS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libclone.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libclone.a $(LDFLAGS) $(LDLIBS) -lcmocka

$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(FUZZ_DIR)/libfuzz.a: $(FUZZ_LIB_OBJ)
	rm -f $@ && ar rcs $@ $^

$(FUZZ_DIR)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_DIR)/libfuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< \
		$(FUZZ_DIR)/libfuzz.a $(LDLIBS)

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(FUZZ_LIB_OBJ:.o=.d) \
	$(FUZZ_BIN:=.d)

deps:
	@sh contrib/deps.sh

guest:
	@sh contrib/guest/build.sh build/guest

unit: $(UNIT_BIN)
	@sh tests/run-unit.sh $(UNIT_BIN)

# The unit tests again under ASan/UBSan, then the end-to-end tests on the
# real KVM with the real guest.
check: all guest
	@$(MAKE) --no-print-directory layers
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory SAN=1 unit
	@$(PYTHON) tests/integration/run.py

# Benchmarks (not tests): BENCH_ARGS=--write-docs updates docs/benchmarks.md.
bench: all guest
	@$(PYTHON) tests/bench/boot.py $(BENCH_ARGS)
	@$(PYTHON) tests/bench/clone.py $(BENCH_ARGS)
	@$(PYTHON) tests/bench/ssh.py $(BENCH_ARGS)
	@$(PYTHON) tests/bench/load.py $(BENCH_ARGS)

# Everything a fresh Debian machine needs, then a development server on
# 127.0.0.1:2222 (open sign-up: the first key used for a name claims it).
run: deps
	@$(MAKE) --no-print-directory all guest
	@sh contrib/dev-config.sh
	@exec build/clone serve -c build/clone-dev.ini

# Each harness FUZZ_TIME seconds on a scratch copy of its seed corpus;
# fails on any crash, leak or timeout (the input lands in build/fuzz/).
fuzz: $(FUZZ_BIN)
	@sh tests/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_BIN)

clean:
	rm -rf build
