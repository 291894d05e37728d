# The two commands of the README.
#   make run    install what is missing, build, start sealpostd on embedded
#               defaults with its data under ./data (Ctrl-C stops it)
#   make check  build with sanitizers and run every test
.PHONY: run build check bench format clean

run: build
	@mkdir -p data
	@exec build/release/src/sealpostd --data-dir "$(CURDIR)/data"

build:
	@mkdir -p build
	@scripts/install-deps
	@[ -f build/release/build.ninja ] || \
	    meson setup build/release --buildtype=release >build/setup.log 2>&1 || \
	    { cat build/setup.log; rm -rf build/release; exit 1; }
	@meson compile -C build/release >build/compile.log 2>&1 || \
	    { cat build/compile.log; exit 1; }

check:
	scripts/check

bench: build
	bench/run

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build
