# tcptools: build, test, run and install bcc's TCP tracing tools ported to Rust.
#
#   make deps       install build and test dependencies (Debian/Ubuntu, apt-get)
#   make build      release build of the three tools
#   make test       every test, including the live BPF tests (run as root)
#   make run TOOL=tcpstates ARGS=-T
#   make install    PREFIX=/usr/local DESTDIR=  (binaries in $(PREFIX)/sbin)
#   make vmlinux    regenerate vmlinux/<arch>/vmlinux.h from the running kernel's BTF
#   make bench      regenerate BENCHMARKS.md

PREFIX  ?= /usr/local
DESTDIR ?=
CARGO   ?= cargo
TOOL    ?= tcpstates
ARGS    ?=
TOOLS   := tcpstates tcprtt tcpconnlat
ARCH    := $(shell uname -m)

# Debian packages: building BPF (clang, llvm), linking libbpf (libelf, zlib, pkg-config),
# live tests (nftables, iproute2, and libbpf-tools as the peer to compare with),
# `make vmlinux` (bpftool).
DEPS := clang llvm libelf-dev zlib1g-dev pkg-config nftables iproute2 libbpf-tools bpftool

.PHONY: all deps build test run install uninstall vmlinux bench clean

all: build

deps:
	@missing=""; \
	for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if ! command -v apt-get >/dev/null 2>&1; then \
			echo "tcptools needs these packages (or your distribution's equivalents):$$missing" >&2; \
			exit 1; \
		fi; \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "tcptools needs a Rust toolchain (cargo): https://rustup.rs" >&2; exit 1; }

build: deps
	$(CARGO) build --release --bins

test: deps
	$(CARGO) test --release -- --test-threads=4

run: build
	./target/release/$(TOOL) $(ARGS)

install: build
	install -d $(DESTDIR)$(PREFIX)/sbin
	for t in $(TOOLS); do install -m 0755 target/release/$$t $(DESTDIR)$(PREFIX)/sbin/$$t; done

uninstall:
	for t in $(TOOLS); do rm -f $(DESTDIR)$(PREFIX)/sbin/$$t; done

vmlinux: deps
	mkdir -p vmlinux/$(ARCH)
	bpftool btf dump file /sys/kernel/btf/vmlinux format c > vmlinux/$(ARCH)/vmlinux.h.tmp
	mv vmlinux/$(ARCH)/vmlinux.h.tmp vmlinux/$(ARCH)/vmlinux.h

bench: build
	bench/run.sh

clean:
	$(CARGO) clean
