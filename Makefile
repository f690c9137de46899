# The front door. `make serve` and `make test` work on a fresh Debian machine.
JOBS      ?= $(shell nproc)
RELEASE   := build/release
ASAN      := build/asan
DATA      ?= ./data
LISTEN    ?= 127.0.0.1:8080
# Continuous backup (point-in-time restore, forks at a timestamp); BACKUP_URL=none turns it off.
BACKUP_URL ?= file://$(abspath $(DATA))/backups

.PHONY: all deps build server asan serve test unit unit-asan integration integration-asan bench bench-write clean format

all: build

deps:
	@scripts/install-deps

$(RELEASE)/build.ninja:
	cmake -S . -B $(RELEASE) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo

$(ASAN)/build.ninja:
	cmake -S . -B $(ASAN) -G Ninja -DCMAKE_BUILD_TYPE=Debug -DQUIRE_SANITIZE=ON -DQUIRE_BUILD_BENCH=OFF

build: deps $(RELEASE)/build.ninja
	cmake --build $(RELEASE) -j $(JOBS)

# The release server binary alone (what `make serve` and the integration tests need): the unit
# tests and benchmark programs are most of a full build.
server: deps $(RELEASE)/build.ninja
	cmake --build $(RELEASE) -j $(JOBS) --target quire

asan: deps $(ASAN)/build.ninja
	cmake --build $(ASAN) -j $(JOBS)

serve: server
	$(RELEASE)/quire serve --data $(DATA) --listen $(LISTEN) \
	  $(if $(filter none,$(BACKUP_URL)),,--backup-url $(BACKUP_URL))

unit: build
	JOBS=$(JOBS) scripts/unit-tests $(RELEASE)

unit-asan: asan
	JOBS=$(JOBS) scripts/unit-tests $(ASAN)

integration: server
	QUIRE_BIN=$(abspath $(RELEASE)/quire) tests/integration/run

# The same real-client suite against the sanitizer build of the server. The object store is
# down for 10 s there instead of a minute (the release run holds the full minute).
integration-asan: asan
	ASAN_OPTIONS=quarantine_size_mb=64:detect_leaks=1 QUIRE_BIN=$(abspath $(ASAN)/quire) \
	  QUIRE_TEST_STORE_DOWN_MS=10000 QUIRE_TEST_STOP_TIMEOUT_MS=20000 tests/integration/run

# Every test: the integration suite against the release server, the unit tests and the
# integration suite again under ASan+UBSan; the sanitizer build compiles in the background while
# the release server is tested (scripts/test-all). `make unit` runs the unit tests of the
# release build too.
test: server $(ASAN)/build.ninja
	JOBS=$(JOBS) scripts/test-all

bench: build
	scripts/install-deps --bench
	bench/run

# The write-path benchmark: inserts at 1/8/64 clients and interactive transactions.
bench-write: build
	scripts/install-deps --bench
	bench/write_run

format:
	clang-format -i $$(git ls-files '*.cpp' '*.h')

clean:
	rm -rf build
