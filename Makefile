# orderpulse — top-level build.
#
# Objects go to build/ (build/asan/, build/tsan/ for the sanitizer variants),
# the three release binaries to bin/. Every module is one .c + one .h; the
# engine's modules form build/libop.a, which the binaries and the tests link.
#
#   make            build bin/orderpulse, bin/orderpulse-sim, bin/orderpulse-devbroker
#   make test       install what is missing, build, run every test (what CI runs)
#   make demo       install, build, start redis + dev broker + engine + simulator
#   make bench      run every benchmark and write docs/BENCHMARKS.md
#   make asan|tsan  sanitizer builds (their test runs are part of `make test`)
#   make fuzz       run the parser fuzzer (FUZZ_SECONDS=600)

VARIANT ?= release
CC      ?= cc
CXX     ?= c++

PKGS    := rdkafka liburcu liburcu-cds hiredis libh2o-evloop openssl libmariadb
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Wall -Wextra -Werror \
               -Wshadow -Wstrict-prototypes -Wmissing-prototypes -MMD -MP \
               -I. $(PKG_CFLAGS)
OPT     ?= -O2 -g

ifeq ($(VARIANT),release)
  B       := build
  BINDIR  := bin
  SAN     :=
  MALLOC  := -ljemalloc
else ifeq ($(VARIANT),asan)
  B       := build/asan
  BINDIR  := build/asan/bin
  SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
  MALLOC  :=
else ifeq ($(VARIANT),tsan)
  B       := build/tsan
  BINDIR  := build/tsan/bin
  SAN     := -fsanitize=thread -fno-omit-frame-pointer
  MALLOC  :=
else ifeq ($(VARIANT),profile)
  B       := build/profile
  BINDIR  := build/profile/bin
  SAN     := -fno-omit-frame-pointer -mno-omit-leaf-frame-pointer
  MALLOC  := -ljemalloc
else
  $(error unknown VARIANT=$(VARIANT): use release, asan, tsan or profile)
endif

CFLAGS  := $(CFLAGS_BASE) $(OPT) $(SAN) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN) $(EXTRA_LDFLAGS)
LIBS    := $(PKG_LIBS) $(MALLOC) -lm -pthread

# --- sources ----------------------------------------------------------------
LIB_SRC  := $(sort $(filter-out engine/main.c,$(wildcard engine/*.c)) $(wildcard engine/io/*.c) $(wildcard http/*.c))
SIM_SRC  := $(sort $(filter-out sim/main.c sim/devbroker.c,$(wildcard sim/*.c)))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
STRESS_SRC := $(sort $(wildcard tests/stress/stress_*.c))

LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
SIM_OBJ  := $(SIM_SRC:%.c=$(B)/%.o)
LIBOP    := $(B)/libop.a
LIBSIM   := $(B)/libsim.a

BIN_MAIN  := engine/main.c:orderpulse sim/main.c:orderpulse-sim sim/devbroker.c:orderpulse-devbroker
BINS      := $(foreach m,$(BIN_MAIN),$(if $(wildcard $(firstword $(subst :, ,$(m)))),$(BINDIR)/$(lastword $(subst :, ,$(m)))))
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
TOOL_BINS := $(TOOL_SRC:tests/tools/%.c=$(B)/tests/%)
STRESS_BINS := $(STRESS_SRC:tests/stress/%.c=$(B)/tests/%)

.PHONY: all deps test unit stress diff-test chaos e2e-asan tools asan tsan fuzz fuzz-smoke clean format check-format \
        demo bench profile install e2e
.DEFAULT_GOAL := all

all: $(BINS) $(UNIT_BINS) $(TOOL_BINS) $(STRESS_BINS)

deps:
	@tools/deps.sh

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

# The Redis functions are linked into redis.o (.incbin).
$(B)/engine/io/redis.o: engine/io/redis.lua

$(LIBOP): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(LIBSIM): $(SIM_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(BINDIR)/orderpulse: $(B)/engine/main.o $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BINDIR)/orderpulse-sim: $(B)/sim/main.o $(LIBSIM) $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BINDIR)/orderpulse-devbroker: $(B)/sim/devbroker.o $(LIBSIM) $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Unit tests: one Criterion binary per source file.
$(B)/tests/%: $(B)/tests/unit/%.o $(LIBSIM) $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -lcriterion

# Stress programs: plain executables (Criterion cannot run under TSan).
$(B)/tests/stress_%: $(B)/tests/stress/stress_%.o $(LIBSIM) $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Test tools (differential checker, comparators, load drivers).
$(B)/tests/%: $(B)/tests/tools/%.o $(LIBSIM) $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) -ljansson

-include $(shell find $(B) -name '*.d' 2>/dev/null)

# --- sanitizer variants -------------------------------------------------------
asan:
	$(MAKE) VARIANT=asan all
tsan:
	$(MAKE) VARIANT=tsan all

# --- fuzzing ------------------------------------------------------------------
FUZZ_SECONDS ?= 600
FUZZ_BIN     := build/fuzz/fuzz_parse
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -I. -g -O1 -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined

FUZZ_SRC     := tests/fuzz/fuzz_parse.c engine/parse.c engine/utf8.c

$(FUZZ_BIN): $(FUZZ_SRC) engine/parse.h engine/utf8.h engine/hash.h
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $(FUZZ_SRC)

fuzz: deps $(FUZZ_BIN)
	tests/fuzz/run.sh $(FUZZ_BIN) $(FUZZ_SECONDS)

fuzz-smoke: $(FUZZ_BIN)
	tests/fuzz/run.sh $(FUZZ_BIN) 20

# --- tests --------------------------------------------------------------------
unit: all
	tests/run_unit.sh $(B)/tests

# liburcu is not built with TSan: its internal synchronisation (call_rcu and
# lfht worker threads) is invisible to it, so reports from inside it are
# suppressed; our own annotations cover the hand-overs we make through it.
export TSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 second_deadlock_stack=1

stress: all
	@set -e; for t in $(STRESS_BINS); do echo "== $$t"; $$t; done

# The parser against jansson plus an independent schema check, on random
# valid and mutated documents (DIFF_COUNT of them); its fast path against
# its general path, with the best vector kernel, again with AVX2, and with
# AVX-512 without VBMI2 (where the CPU has it).
DIFF_COUNT ?= 200000
diff-test: all
	$(B)/tests/parse_diff $(DIFF_COUNT) 1
	$(B)/tests/parse_diff $(DIFF_COUNT) 2 1
	$(B)/tests/parse_diff $$(($(DIFF_COUNT) / 4)) 3 2

check-format:
	@tools/check-format.sh

format:
	clang-format -i $(wildcard engine/*.[ch] engine/io/*.[ch] sim/*.[ch] http/*.[ch] tests/*/*.[ch] bench/*.[ch])

test: deps
	$(MAKE) check-format
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) stress
	$(MAKE) diff-test
	$(MAKE) fuzz-smoke
	$(MAKE) VARIANT=asan all
	$(MAKE) VARIANT=asan unit
	$(MAKE) VARIANT=asan stress
	$(MAKE) e2e-asan
	$(MAKE) VARIANT=asan diff-test DIFF_COUNT=50000
	$(MAKE) VARIANT=tsan all
	$(MAKE) VARIANT=tsan stress
	$(MAKE) e2e

e2e: all
	tests/run_e2e.sh

# A subset of the end-to-end tests against the ASan/UBSan binaries: the
# engine's replay exactness (its exit status catches leaks), the whole API
# (its tests scan the engine's stderr for sanitizer reports), kill -9
# recovery, and the archive's days and history readers.
E2E_ASAN := test_engine.FileSourceExactness test_engine.BadFlags test_api \
            test_redis.RedisExactness.test_kill_9_at_random_moments \
            test_exactly_once.ExactlyOnce.test_file_replayed_twice_counts_once \
            test_exactly_once.ExactlyOnce.test_wrong_type_key_applies_nothing \
            test_archive.ArchiveReplay.test_days_equal_a_count_of_the_orders \
            test_archive.ArchiveHistory
e2e-asan:
	$(MAKE) VARIANT=asan all
	OP_BIN=$(CURDIR)/build/asan/bin tests/run_e2e.sh $(E2E_ASAN)

clean:
	rm -rf build bin

# --- benchmarks -----------------------------------------------------------------
BENCH_BINS := build/bench/parse_bench build/bench/simdjson_pass build/bench/redis_bench \
              build/bench/kafka_ceiling build/bench/physlimit build/bench/merge_bench

build/bench/kafka_ceiling: bench/kafka_ceiling.c bench/lines.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ bench/kafka_ceiling.c bench/lines.c $(LIBS)

build/bench/redis_bench: bench/redis_bench.c bench/lines.c $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ bench/redis_bench.c bench/lines.c $(LIBOP) $(LIBS)

build/bench/parse_bench: bench/parse_bench.c bench/lines.c engine/parse.c engine/utf8.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_BASE) -O2 -g -o $@ $(filter %.c,$^)

# The ceilings are built for this very CPU (-O3 -march=native): the engine
# is compared with the fastest build of them we can make, not a generic one.
build/bench/simdjson_pass: bench/simdjson_pass.cc bench/lines.c
	@mkdir -p $(@D)
	$(CXX) -std=c++17 -O3 -march=native -g -I. -pthread -o $@ -x c++ bench/simdjson_pass.cc -x c bench/lines.c -lsimdjson

build/bench/merge_bench: bench/merge_bench.c bench/lines.c $(LIBOP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -o $@ bench/merge_bench.c bench/lines.c $(LIBOP) $(LIBS)

build/bench/physlimit: bench/physlimit.c
	@mkdir -p $(@D)
	$(CC) -std=c11 -D_GNU_SOURCE -O3 -march=native -Wall -Wextra -Werror -pthread -o $@ $<

bench: deps all $(BENCH_BINS)
	bench/run.sh $(BENCH_ORDERS)

# perf profile of the hot path (frame pointers; see tools/profile.sh).
profile: deps all
	$(MAKE) VARIANT=profile all
	tools/profile.sh $(PROFILE_ORDERS)

# 20 kill -9 of the engine while the simulator produces (make test does 5),
# with Redis alone and with the MariaDB archive, and 20 in the middle of
# flushes of ~100 000 new users each (make test: 5); 20 rebalances while Redis is
# down (make test: 3); the Kafka fault tests with 10 rounds each over 600 000
# orders (make test: 3); 10 kill -9 of the Redis primary under Sentinel, with
# the replica in step and behind (make test: 3 each), and 3 failovers of the
# slot's owner in a Redis Cluster (make test: 1).
chaos: all
	OP_E2E_KILLS=20 OP_E2E_CRASH_ORDERS=600000 tests/run_e2e.sh \
	    test_redis.RedisExactness.test_kill_9_at_random_moments \
	    test_archive.ArchiveLive.test_kill_9_at_random_moments \
	    test_exactly_once.ExactlyOnce.test_kills_in_the_middle_of_big_flushes
	OP_E2E_REBALANCE_RUNS=20 tests/run_e2e.sh \
	    test_exactly_once.ExactlyOnce.test_rebalance_while_redis_is_down
	OP_E2E_FAULT_ROUNDS=10 OP_E2E_FAULT_ORDERS=600000 tests/run_e2e.sh \
	    test_kafka_faults.FaultsWithRedis
	OP_E2E_HA_KILLS=10 OP_E2E_CLUSTER_KILLS=3 tests/run_e2e.sh \
	    test_redis_ha.SentinelFailover.test_primary_kills_at_random_moments \
	    test_redis_ha.SentinelFailover.test_kills_with_the_replica_behind \
	    test_redis_ha.ClusterHA.test_moved_migration_and_failover

# --- install --------------------------------------------------------------------
PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/orderpulse/http/static \
	    $(DESTDIR)$(PREFIX)/share/orderpulse/node_modules/echarts/dist
	install -m 755 $(BINS) $(DESTDIR)$(PREFIX)/bin/
	install -m 644 http/static/* $(DESTDIR)$(PREFIX)/share/orderpulse/http/static/
	install -m 644 node_modules/echarts/dist/echarts.min.js \
	    $(DESTDIR)$(PREFIX)/share/orderpulse/node_modules/echarts/dist/
	@echo "installed; $(PREFIX)/bin/orderpulse --http 8080 serves the dashboard (found in $(PREFIX)/share/orderpulse)"

demo: deps all
	@tools/demo.sh
.SECONDARY:
