# Thin wrapper around CMake. `make` builds build/sshmux (OpenSSL backend); `make test` installs
# what is missing, builds both crypto backends plus an ASan+UBSan build and runs the whole suite;
# `make demo` runs sshmux exec over 250 host aliases of a throwaway local sshd.
# `make fuzz` runs each libFuzzer harness (tests/fuzz) for FUZZ_SECONDS (default 60).
# `make install [PREFIX=/usr/local] [DESTDIR=...]` installs the OpenSSL build: bin/sshmux,
# include/sshmux.h, lib/libsshmux.a (libssh inside), lib/pkgconfig/sshmux.pc, the manual page.
JOBS ?= $(shell nproc)
PREFIX ?= /usr/local
CMAKE_GEN := $(shell command -v ninja >/dev/null 2>&1 && echo "-G Ninja")
CTEST_ARGS ?= --output-on-failure
FUZZ_SECONDS ?= 60

.PHONY: bench-quick all deps build-openssl build-mbedtls build-asan build-fuzz test test-openssl \
        test-mbedtls test-asan fuzz demo bench install clean

all: build-openssl

deps:
	@scripts/install-deps.sh

define cmake_build
	@scripts/build-libssh.sh $(2)
	cmake -S . -B build/$(1) $(CMAKE_GEN) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	      -DSSHMUX_CRYPTO=$(2) $(3) >/dev/null
	cmake --build build/$(1) -j $(JOBS)
endef

build-openssl: deps
	$(call cmake_build,openssl,openssl,)
	@ln -sf openssl/sshmux build/sshmux

build-mbedtls: deps
	$(call cmake_build,mbedtls,mbedtls,)

build-asan: deps
	$(call cmake_build,asan,openssl,-DSSHMUX_SANITIZE=ON)

# libFuzzer needs clang; the library is built again with coverage and ASan+UBSan (tests/fuzz).
build-fuzz: deps
	$(call cmake_build,fuzz,openssl,-DCMAKE_C_COMPILER=clang -DSSHMUX_FUZZ=ON -DSSHMUX_TESTS=OFF)

fuzz: build-fuzz
	cd build/fuzz && FUZZ_SECONDS=$(FUZZ_SECONDS) ctest $(CTEST_ARGS) --verbose -L fuzz

test-openssl: build-openssl
	cd build/openssl && ctest -j $(JOBS) $(CTEST_ARGS)

test-mbedtls: build-mbedtls
	cd build/mbedtls && ctest -j $(JOBS) $(CTEST_ARGS)

test-asan: build-asan
	cd build/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j $(JOBS) $(CTEST_ARGS)

# Every build first, then every suite: a failure in one backend doesn't hide the others' results.
# A suite runs as many test files at once as there are cores: each starts its own servers on
# random ports in its own directory, and they spend about half their time waiting on them
# (2 cores: the OpenSSL suite 588 -> 316 s, ASan 565 -> 350 s).
# Then each fuzzer for 15 s, as many at once as there are cores (a crash, leak, timeout or OOM it
# finds fails the run), and last the benchmark smoke run (bench/run --quick: 100 hosts, sshmux
# against its peers, < 90 s).
test: build-openssl build-mbedtls build-asan build-fuzz
	@rc=0; \
	for b in openssl mbedtls asan; do \
	    echo "=== suite: $$b ==="; \
	    ( cd build/$$b && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	      ctest -j $(JOBS) $(CTEST_ARGS) ) || rc=1; \
	done; \
	echo "=== fuzz: 15 s per harness ==="; \
	( cd build/fuzz && FUZZ_SECONDS=15 ctest -j $(JOBS) $(CTEST_ARGS) --verbose -L fuzz ) || rc=1; \
	echo "=== bench smoke: bench/run --quick ==="; \
	bench/run --quick --out build/bench-quick/results.csv || rc=1; \
	exit $$rc

install: build-openssl
	DESTDIR="$(DESTDIR)" cmake --install build/openssl --prefix "$(PREFIX)"

demo: build-openssl
	python3 scripts/demo.py build/sshmux

bench: build-openssl build-mbedtls
	bench/run --medium $(BENCH_ARGS)

bench-quick: build-openssl build-mbedtls
	bench/run --quick --out build/bench-quick/results.csv

clean:
	rm -rf build/openssl build/mbedtls build/asan build/fuzz build/sshmux
