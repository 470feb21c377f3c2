# tcptools: build, test, run and install bcc's TCP tracing tools ported to Rust.
#
#   make deps       install build and test dependencies (Debian/Ubuntu, apt-get)
#   make build      release build of the three tools
#   make test       every test, including the live BPF tests and the kernel matrix (root)
#   make test-kernels  boot Debian's 5.10, 6.1, 6.12, 6.18 and newest cloud kernels, x86_64
#                   and arm64, in qemu, run every tool inside (its table: KERNELS_DIR/matrix.md)
#   make kernels-doc   make test-kernels, and put its table into docs/kernels.md
#   make run TOOL=tcpstates ARGS=-T
#   make install    PREFIX=/usr/local DESTDIR=  (binaries in $(PREFIX)/sbin, man pages,
#                   bash/zsh/fish completions); make uninstall removes exactly those files
#   make docs       man pages and completions into target/docs (from the clap definitions)
#   make release    static release build in target/static (needs only libc), with sizes
#   make static-check  make release, then ldd: fail on any library but the libc family
#   make vmlinux    regenerate vmlinux/<arch>/vmlinux.h from the running kernel's BTF
#   ARCH=arm64      with release, static-check, deb and vmlinux: cross-build for arm64 on
#                   x86_64 (target/static-arm64/release; vmlinux/aarch64/vmlinux.h from
#                   Debian's arm64 cloud kernel); docs/architectures.md
#   make bench      regenerate BENCHMARKS.md (PODS=0: without bench/pods.py's section)
#   make bench-pods BENCHMARKS.md's pods section alone (a containerd of its own, 100 pods)
#   make bench-series BENCHMARKS.md's series section alone (1, 10, 100 pods; text, protobuf)
#   make bench-before REV=<commit>  that commit's release binaries in target/before/release;
#                   then make bench BEFORE=target/before/release sets them beside today's
#                   in the same storms (BENCHMARKS.md's "Before and after")
#   make deb        target/tcptools_VERSION_ARCH.deb from the static release build
#   make image      the container image (Containerfile, FROM scratch) with podman: a
#                   manifest list of linux/amd64 and linux/arm64

PREFIX  ?= /usr/local
DESTDIR ?=
CARGO   ?= cargo
TOOL    ?= tcpstates
ARGS    ?=
# Every [[bin]] in Cargo.toml: tcpstates tcprtt tcpconnlat tcptools-exporter.
TOOLS   := $(shell awk '/^\[\[bin\]\]/ { bin = 1; next } /^\[/ { bin = 0 } bin && $$1 == "name" { gsub(/"/, "", $$3); print $$3 }' Cargo.toml)
# The architecture built for (release, deb, vmlinux): uname -m's name or Debian's. ARCH=arm64
# (or aarch64) on an x86_64 machine cross-builds with Debian's cross toolchain (make deps).
HOST_ARCH := $(shell uname -m)
ARCH      := $(HOST_ARCH)
# The one table of architecture names: uname -m's (Rust's target_arch, vmlinux/<it>/),
# Debian's, and the GNU triplet (cross toolchain, multiarch folders). build.rs maps Rust's
# name to clang's __TARGET_ARCH_*.
ARCHES    := x86_64:amd64:x86_64-linux-gnu aarch64:arm64:aarch64-linux-gnu
arch_row   = $(subst :, ,$(firstword $(foreach r,$(ARCHES),$(if $(filter $(1),$(wordlist 1,2,$(subst :, ,$(r)))),$(r)))))
ARCH_ROW  := $(call arch_row,$(ARCH))
ifeq ($(ARCH_ROW),)
ifneq ($(ARCH),$(HOST_ARCH))
$(error ARCH=$(ARCH): tcptools builds for $(foreach r,$(ARCHES),$(word 1,$(subst :, ,$(r))) ($(word 2,$(subst :, ,$(r))))))
endif
ARCH_ROW  := $(HOST_ARCH) $(shell dpkg --print-architecture 2>/dev/null) $(HOST_ARCH)-linux-gnu
endif
MACHINE   := $(word 1,$(ARCH_ROW))
DEB_ARCH  := $(word 2,$(ARCH_ROW))
TRIPLET   := $(word 3,$(ARCH_ROW))
# Non-empty when ARCH is not the machine's own: a cross build.
CROSS     := $(filter-out $(HOST_ARCH),$(MACHINE))
VERSION := $(shell awk -F'"' '/^version/ { print $$2; exit }' Cargo.toml)

# Debian packages: building BPF (clang, llvm), linking libbpf (libelf, zlib, pkg-config),
# live tests (nftables, iproute2, and libbpf-tools as the peer to compare with),
# `make vmlinux` (bpftool), the exporter's live tests (prometheus; openssl for test
# certificates and curl as a TLS client), the kernel matrix (qemu, busybox, cpio, and gcc
# with libc6-dev for its static traffic generator), protoc for the CRI protobufs (k8s-cri's
# build) and containerd (its CRI plugin, with runc) for the pod tests, whose images are
# static binaries from gcc written as OCI archives by python3 (tests/common/cri.rs).
DEPS := clang llvm libelf-dev zlib1g-dev pkg-config nftables iproute2 libbpf-tools bpftool prometheus \
	openssl curl qemu-system-x86 busybox-static cpio gcc libc6-dev \
	lintian man-db dpkg-dev podman runc python3 python3-venv python3-matplotlib \
	protobuf-compiler containerd
# The arm64 build on an x86_64 machine (ARCH=arm64): Debian's cross toolchain, the arm64 C
# library, libelf and zlib through multiarch (dpkg's foreign architecture arm64: the machine's
# apt sources must serve it, as Debian's archive does), qemu-system-arm for the kernel
# matrix's arm64 rows, and Rust's aarch64-unknown-linux-gnu standard library (rustup).
ifeq ($(HOST_ARCH),x86_64)
FOREIGN_ARCHES := arm64
DEPS    += gcc-aarch64-linux-gnu libc6-dev-arm64-cross libc6-dev:arm64 libelf-dev:arm64 \
	zlib1g-dev:arm64 qemu-system-arm
RUST_TARGETS := aarch64-unknown-linux-gnu
endif
# The delivery tests (tests/delivery_*.rs): the .deb (lintian, man-db, dpkg-shlibdeps), the
# image (podman; runc, as crun refuses hybrid cgroup hosts), the manifests (kubernetes-validate
# and prometheus-operator's ServiceMonitor models from PyPI, in VENV), the dashboard picture.
VENV    := target/venv
PYDEPS  := kubernetes-validate==1.37.0 cloudcoil-models-prometheus-operator==0.80.1.0

# Install layout; install-files copies what build and docs made, and runs no cargo (so
# tests/packaging.rs can call it while `cargo test` holds the build lock).
BINDIR   ?= target/release
DOCS     ?= target/docs
sbindir  := $(PREFIX)/sbin
man8dir  := $(PREFIX)/share/man/man8
bashdir  := $(PREFIX)/share/bash-completion/completions
zshdir   := $(PREFIX)/share/zsh/site-functions
fishdir  := $(PREFIX)/share/fish/vendor_completions.d

# The release build: libbpf vendored (libbpf-sys' default), libelf and zlib linked from
# their static archives (Debian: libelf-dev, zlib1g-dev), in its own target directory. A
# cross build (ARCH=arm64) has target/static-arm64: cargo's --target output is copied to
# its release/, so STATIC_TARGET/release holds the binaries for either architecture. Its C
# compiler and linker are the cross gcc (libbpf, ring, and the link), its libelf.a and
# libz.a the multiarch ones (libelf-dev:arm64, zlib1g-dev:arm64).
HOST_STATIC_TARGET := target/static
HOST_LIBDIR   := $(abspath $(dir $(shell $(CC) -print-file-name=libelf.a)))
ifeq ($(CROSS),)
STATIC_TARGET := $(HOST_STATIC_TARGET)
STATIC_CC     := $(CC)
STATIC_OUT    := $(STATIC_TARGET)/release
CROSS_ENV     :=
LIBBPF_ENV     = LIBBPF_SYS_LIBRARY_PATH=$(STATIC_LIBDIR)
else
RUST_TARGET   := $(MACHINE)-unknown-linux-gnu
STATIC_TARGET := target/static-$(DEB_ARCH)
STATIC_CC     := $(TRIPLET)-gcc
STATIC_OUT    := $(STATIC_TARGET)/$(RUST_TARGET)/release
CROSS_ENV     := CARGO_TARGET_$(shell echo $(RUST_TARGET) | tr a-z- A-Z_)_LINKER=$(STATIC_CC) \
	CC_$(subst -,_,$(RUST_TARGET))=$(STATIC_CC) AR_$(subst -,_,$(RUST_TARGET))=$(TRIPLET)-ar
# The target's libbpf-sys links the arm64 archives, the build scripts' (this machine's,
# static too: cargo unifies the features) this machine's.
LIBBPF_ENV     = LIBBPF_SYS_LIBRARY_PATH_$(HOST_ARCH)_unknown_linux_gnu=$(HOST_LIBDIR) \
	LIBBPF_SYS_LIBRARY_PATH_$(subst -,_,$(RUST_TARGET))=$(STATIC_LIBDIR)
endif
STATIC_LIBDIR := $(abspath $(dir $(shell $(STATIC_CC) -print-file-name=libelf.a 2>/dev/null)))
# ldd may list only these: the C library family and the kernel's vDSO.
LIBC_ONLY := ^(linux-vdso\.so\.1|linux-gate\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|(/[^ ]*/)?ld-linux[^ /]*\.so\.[0-9]+)$$

.PHONY: deb deb-files image image-context image-manifest
.PHONY: all deps build test test-kernels kernels-doc run docs install install-files uninstall release release-foreign static-check ldd-check vmlinux bench bench-pods bench-series bench-before clean

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
		for a in $(FOREIGN_ARCHES); do \
			dpkg --print-foreign-architectures | grep -qx $$a || { echo "dpkg: adding architecture $$a"; dpkg --add-architecture $$a; } || exit 1; \
		done; \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(CARGO) >/dev/null 2>&1 || { echo "tcptools needs a Rust toolchain (cargo): https://rustup.rs" >&2; exit 1; }
	@for t in $(RUST_TARGETS); do \
		test -d "$$(rustc --print sysroot)/lib/rustlib/$$t/lib" && continue; \
		command -v rustup >/dev/null 2>&1 || { echo "tcptools' cross build needs Rust's $$t standard library (rustup target add $$t)" >&2; exit 1; }; \
		rustup target add $$t || exit 1; \
	done
	@$(VENV)/bin/pip show -q $(foreach p,$(PYDEPS),$(firstword $(subst ==, ,$(p)))) >/dev/null 2>&1 || \
		{ python3 -m venv $(VENV) && $(VENV)/bin/pip install -q $(PYDEPS); }

build: deps
	$(CARGO) build --release --bins

# The `ci` profile (Cargo.toml) is the release profile without LTO: a cold run links its
# dozen test binaries in seconds instead of minutes.
# The static release builds come first, this machine's and arm64's (on x86_64): the delivery
# tests package them.
test: deps release release-foreign
	$(CARGO) test --profile ci --no-fail-fast -- --test-threads=4
	$(MAKE) --no-print-directory static-check
	$(MAKE) --no-print-directory test-kernels

# The kernel matrix (tests/kernels/): the newest Debian cloud kernel of each series, for each
# architecture, fetched with a private apt configuration and cached in KERNELS_DIR, booted in
# qemu (TCG) with that architecture's static release build; one line per kernel and check,
# non-zero exit on any failure.
KERNELS_DIR    ?= target/kernels
# 5.10, 6.1, 6.12: Debian 11, 12, 13; 6.18, the last 6.x LTS, and "newest", the highest series
# trixie-backports serves when the matrix runs: both from trixie-backports.
KERNEL_SERIES  ?= 5.10 6.1 6.12 6.18 newest
# The machine's architecture and the foreign ones `make release-foreign` builds (arm64 on x86_64).
KERNEL_ARCHES  ?= $(HOST_ARCH) $(FOREIGN_ARCHES)
# VMs at a time (each is one host thread: single-threaded TCG).
KERNEL_JOBS    ?= 2
# Each architecture's static release build and static traffic generator (gcc -static; a
# foreign architecture's with its cross gcc).
kernel_host     = $(filter $(HOST_ARCH),$(word 1,$(call arch_row,$(1))))
kernel_bindir   = $(if $(call kernel_host,$(1)),$(HOST_STATIC_TARGET),target/static-$(word 2,$(call arch_row,$(1))))/release
kernel_cc       = $(if $(call kernel_host,$(1)),$(CC),$(word 3,$(call arch_row,$(1)))-gcc)
test-kernels: release release-foreign
	@mkdir -p $(KERNELS_DIR)
	set -e; $(foreach a,$(KERNEL_ARCHES),$(call kernel_cc,$(a)) -static -O2 -Wall -o $(KERNELS_DIR)/traffic-$(a) tests/kernels/traffic.c;)
	python3 tests/kernels/matrix.py $(foreach a,$(KERNEL_ARCHES),--arch $(a):$(call kernel_bindir,$(a)):$(KERNELS_DIR)/traffic-$(a)) \
		--work $(KERNELS_DIR) --series "$(KERNEL_SERIES)" --jobs $(KERNEL_JOBS) $(if $(KERNELS_DOC),--doc $(KERNELS_DOC))

# The matrix's markdown table, between the marker comments of docs/kernels.md.
kernels-doc:
	$(MAKE) --no-print-directory test-kernels KERNELS_DOC=docs/kernels.md

run: build
	./target/release/$(TOOL) $(ARGS)

docs: deps
	$(CARGO) run --release --example gendocs -- $(DOCS)

install: build docs
	$(MAKE) --no-print-directory install-files

install-files:
	install -d $(DESTDIR)$(sbindir) $(DESTDIR)$(man8dir) $(DESTDIR)$(bashdir) $(DESTDIR)$(zshdir) $(DESTDIR)$(fishdir)
	set -e; for t in $(TOOLS); do \
		install -m 0755 $(BINDIR)/$$t $(DESTDIR)$(sbindir)/$$t; \
		install -m 0644 $(DOCS)/man8/$$t.8 $(DESTDIR)$(man8dir)/$$t.8; \
		install -m 0644 $(DOCS)/completions/bash/$$t $(DESTDIR)$(bashdir)/$$t; \
		install -m 0644 $(DOCS)/completions/zsh/_$$t $(DESTDIR)$(zshdir)/_$$t; \
		install -m 0644 $(DOCS)/completions/fish/$$t.fish $(DESTDIR)$(fishdir)/$$t.fish; \
	done

uninstall:
	for t in $(TOOLS); do \
		rm -f $(DESTDIR)$(sbindir)/$$t $(DESTDIR)$(man8dir)/$$t.8 $(DESTDIR)$(bashdir)/$$t \
			$(DESTDIR)$(zshdir)/_$$t $(DESTDIR)$(fishdir)/$$t.fish; \
	done

release: deps
	@test -f $(STATIC_LIBDIR)/libelf.a && test -f $(STATIC_LIBDIR)/libz.a || \
		{ echo "release: libelf.a and libz.a not found (in '$(STATIC_LIBDIR)'): install libelf-dev$(if $(CROSS),:$(DEB_ARCH)) and zlib1g-dev$(if $(CROSS),:$(DEB_ARCH))" >&2; exit 1; }
	$(LIBBPF_ENV) $(CROSS_ENV) $(CARGO) build --release --features static \
		--target-dir $(STATIC_TARGET) $(if $(CROSS),--target $(RUST_TARGET)) --bins
	$(if $(CROSS),set -e; mkdir -p $(STATIC_TARGET)/release; for t in $(TOOLS); do cp -p $(STATIC_OUT)/$$t $(STATIC_TARGET)/release/$$t; done)
	@for t in $(TOOLS); do printf '%-20s %9s bytes  %s\n' $$t $$(stat -c %s $(STATIC_TARGET)/release/$$t) $(STATIC_TARGET)/release/$$t; done

# The static release build of each foreign architecture (FOREIGN_ARCHES: arm64 on x86_64).
release-foreign:
	set -e; for a in $(FOREIGN_ARCHES); do $(MAKE) --no-print-directory release ARCH=$$a; done

static-check: release
	@$(MAKE) --no-print-directory ldd-check

# Fails unless every binary in LDD_DIR needs only the libc family (tests run it on both builds).
# A cross build's binaries cannot run here, so ldd cannot list their libraries: their
# NEEDED entries (readelf -d) are checked instead, against the same list.
LDD_DIR ?= $(STATIC_TARGET)/release
ifeq ($(CROSS),)
needed = ldd $(1) | awk '{ print $$1 }'
else
needed = $(TRIPLET)-readelf -d $(1) | sed -n 's/.*(NEEDED).*\[\(.*\)\]$$/\1/p'
endif
ldd-check:
	@set -e; for t in $(TOOLS); do \
		libs=$$($(call needed,$(LDD_DIR)/$$t)); \
		test -n "$$libs" || { echo "ldd-check: no libraries listed for $(LDD_DIR)/$$t" >&2; exit 1; }; \
		bad=$$(printf '%s\n' "$$libs" | grep -Ev '$(LIBC_ONLY)' || true); \
		if [ -n "$$bad" ]; then echo "ldd-check: $$t needs more than libc:" $$bad >&2; exit 1; fi; \
		echo "ldd-check: $$t needs only" $$libs; \
	done

# The running kernel's BTF; with ARCH=arm64 (a cross build), the BTF of Debian's newest arm64
# cloud kernel of VMLINUX_SERIES (default: the running kernel's series), cut out of its
# image by vmlinux/kernel-btf.py.
VMLINUX_SERIES ?= $(shell uname -r | cut -d. -f1,2)
VMLINUX_WORK   := target/vmlinux-$(DEB_ARCH)
vmlinux: deps
	mkdir -p vmlinux/$(MACHINE)
	$(if $(CROSS),python3 vmlinux/kernel-btf.py --arch $(DEB_ARCH) --series $(VMLINUX_SERIES) \
		--work $(VMLINUX_WORK) --out $(VMLINUX_WORK)/btf)
	bpftool btf dump file $(if $(CROSS),$(VMLINUX_WORK)/btf,/sys/kernel/btf/vmlinux) format c \
		> vmlinux/$(MACHINE)/vmlinux.h.tmp
	mv vmlinux/$(MACHINE)/vmlinux.h.tmp vmlinux/$(MACHINE)/vmlinux.h

BEFORE ?=
# PODS=0 leaves out bench/pods.py (containerd's pods: --pod against -c, the exporter
# grouped by 100 pods; a few minutes), which `make bench-pods` runs alone.
PODS ?= 1
bench: build
	$(CARGO) build --release --examples
	python3 bench/run.py $(if $(BEFORE),--before $(BEFORE)) $(BENCH_ARGS)
	$(if $(filter 1,$(PODS)),python3 bench/pods.py $(PODS_ARGS))
	python3 bench/series.py

# BENCHMARKS.md's series section alone: series per node and scrape time at 1, 10 and 100
# pods, classic and native.
bench-series: build
	python3 bench/series.py

bench-pods: build
	$(CARGO) build --release --examples
	python3 bench/pods.py $(PODS_ARGS)

# The release binaries of commit REV (the code before a refactor) for `make bench
# BEFORE=$(BEFORE_TARGET)/release`: REV checked out in a detached git worktree under target/,
# built with a target directory of its own (today's binaries stay where they are). COMMIT
# beside them names the commit for BENCHMARKS.md.
REV           ?=
BEFORE_SRC    := target/before-src
BEFORE_TARGET := target/before
bench-before: deps
	@test -n "$(REV)" || { echo "bench-before: name the commit, e.g. make bench-before REV=413d847" >&2; exit 1; }
	if [ -e $(BEFORE_SRC)/.git ]; then \
		git -C $(BEFORE_SRC) checkout -q -f --detach $(REV); \
	else \
		git worktree add -f --detach $(BEFORE_SRC) $(REV); \
	fi
	$(CARGO) build --release --bins --manifest-path $(BEFORE_SRC)/Cargo.toml \
		--target-dir $(abspath $(BEFORE_TARGET))
	git -C $(BEFORE_SRC) log -1 --format=%h > $(BEFORE_TARGET)/release/COMMIT
	@echo "bench-before: the tools of $$(cat $(BEFORE_TARGET)/release/COMMIT) are in $(BEFORE_TARGET)/release;" \
		"now make bench BEFORE=$(BEFORE_TARGET)/release"

# The Debian package, from the static build; the man pages and completions come from the
# gendocs example built in the same target directory (no second build of the library).
# They are the same for every architecture: a cross build's come from this machine's build.
deb: release
	LIBBPF_SYS_LIBRARY_PATH=$(HOST_LIBDIR) $(CARGO) run -q --release --features static \
		--target-dir $(HOST_STATIC_TARGET) --example gendocs -- $(STATIC_TARGET)/docs
	@$(MAKE) --no-print-directory deb-files DOCS=$(STATIC_TARGET)/docs

# Runs no cargo (tests/delivery_deb.rs calls it while `cargo test` holds the build lock).
deb-files:
	DEB_ARCH=$(DEB_ARCH) STRIP=$(if $(CROSS),$(TRIPLET)-)strip \
		sh contrib/debian/mkdeb $(STATIC_TARGET)/release $(DOCS) target $(VERSION) "$(TOOLS)"

# The image's build context for ARCH: the static binaries and the C library files they load
# (ldd; a cross build's binaries cannot run here, so for them their interpreter and their
# NEEDED libraries from the architecture's multiarch folder, where libc6:arm64 puts them).
IMAGE         ?= localhost/tcptools:$(VERSION)
IMAGE_CONTEXT ?= target/image
ifeq ($(CROSS),)
image_libs = ldd $(1) | grep -o '/[^ ]*'
else
image_libs = $(TRIPLET)-readelf -l $(1) | sed -n 's/.*interpreter: \(.*\)\]$$/\1/p'; \
	$(call needed,$(1)) | grep -v '^ld-linux' | sed 's|^|/lib/$(TRIPLET)/|'
endif
image-context:
	rm -rf $(IMAGE_CONTEXT) && mkdir -p $(IMAGE_CONTEXT)/rootfs/usr/sbin
	set -e; for t in $(TOOLS); do \
		install -m 0755 $(STATIC_TARGET)/release/$$t $(IMAGE_CONTEXT)/rootfs/usr/sbin/$$t; \
		for lib in $$($(call image_libs,$(STATIC_TARGET)/release/$$t)); do \
			mkdir -p $(IMAGE_CONTEXT)/rootfs$$(dirname $$lib); \
			cp -L $$lib $(IMAGE_CONTEXT)/rootfs$$lib; \
		done; \
	done

# The OCI labels version, revision and source (IMAGE_SOURCE: the repository's URL).
IMAGE_SOURCE   ?= $(shell git remote get-url origin 2>/dev/null || echo unknown)
IMAGE_REVISION ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
IMAGE_ARGS     := --build-arg VERSION=$(VERSION) --build-arg REVISION=$(IMAGE_REVISION) \
	--build-arg SOURCE=$(IMAGE_SOURCE)
# The image is a manifest list, one image per architecture of IMAGE_ARCHES (Debian's names,
# which are OCI's too), each FROM scratch with its own binaries and C library (no RUN step,
# so nothing runs emulated). PODMAN may carry options (the tests' private storage).
IMAGE_ARCHES ?= $(word 2,$(call arch_row,$(HOST_ARCH))) $(FOREIGN_ARCHES)
PODMAN       ?= podman
image: release release-foreign
	@$(MAKE) --no-print-directory image-manifest

# Runs no cargo (tests/delivery_image.rs calls it while `cargo test` holds the build lock).
image-manifest:
	set -e; for a in $(IMAGE_ARCHES); do \
		$(MAKE) --no-print-directory image-context ARCH=$$a IMAGE_CONTEXT=$(IMAGE_CONTEXT)/$$a; \
	done
	! $(PODMAN) manifest exists $(IMAGE) || $(PODMAN) manifest rm $(IMAGE)
	! $(PODMAN) image exists $(IMAGE) || $(PODMAN) rmi $(IMAGE)
	$(PODMAN) manifest create $(IMAGE)
	set -e; for a in $(IMAGE_ARCHES); do \
		$(PODMAN) build -f Containerfile $(IMAGE_ARGS) --platform linux/$$a --manifest $(IMAGE) \
			$(IMAGE_CONTEXT)/$$a; \
	done

clean:
	$(CARGO) clean
