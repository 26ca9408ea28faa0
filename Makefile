# Moat — the two commands of the README:
#   make serve   install what is missing, build (Release), start `moat serve` on its defaults
#   make test    install what is missing, build, run every test (ctest)
BUILD      ?= build
BUILD_TYPE ?= Release
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps test-deps configure build serve test test-asan bench format tidy clean

all: build

deps:
	@scripts/install-deps.sh build

test-deps:
	@scripts/install-deps.sh test
	@scripts/node-deps.sh

configure: deps
	@cmake -S . -B $(BUILD) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) $(CMAKE_FLAGS) >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

serve: build
	$(BUILD)/moat serve

test: test-deps build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 600

# Address and undefined-behaviour sanitizers, in their own build tree.
test-asan:
	@$(MAKE) test BUILD=build-asan BUILD_TYPE=RelWithDebInfo CMAKE_FLAGS=-DMOAT_SANITIZE=ON

bench: build
	@scripts/install-deps.sh bench
	@scripts/bench.sh $(BUILD)
	@scripts/bench-gateway.sh $(BUILD)/moat

format:
	@clang-format -i $$(git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'bench/*.cc')

tidy: configure
	@clang-tidy -p $(BUILD) $$(git ls-files 'src/*.cc')

clean:
	rm -rf build build-asan
