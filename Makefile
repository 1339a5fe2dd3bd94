# SPDX-License-Identifier: GPL-2.0
#
# zcdev: the module is built by kbuild from ./Kbuild; everything else here
# is user space or a wrapper around the QEMU rig in selftests/qemu/.
#
#   make [module]        build module/zcdev.ko against KDIR
#   make tools           static tools/zcdev and the examples/ (all on libzcdev)
#   make selftests       static test programs in selftests/zcdev/
#   make check           build, boot and test on every lane in KERNELS (QEMU)
#   make run [CMD=...]   a QEMU guest with the module loaded: a shell, or one command
#   make bench           `zcdev bench` in that guest, then its table, JSON and plot
#                        in build/bench-KERNEL.{txt,json,png} (BENCH_ARGS: its options)
#   make style           checkpatch --strict over the module and the uapi header
#   make sparse          kbuild C=2 with sparse
#   make install         module, tool, uapi header (and udev rule) into the system
#   make dkms-install    register, build and install the module with DKMS

KDIR ?= /lib/modules/$(shell uname -r)/build
PREFIX ?= /usr/local
VERSION := $(shell cat VERSION)
# The rig's cache (Debian roots, kernel images, the debug kernel): see
# selftests/qemu/roots.sh. checkpatch comes from the newest linux-source
# the rig installed in its trixie root.
ZCDEV_CACHE ?= /var/cache/zcdev
LINUX_SOURCE_TAR ?= $(lastword $(sort $(wildcard $(ZCDEV_CACHE)/roots/trixie/usr/src/linux-source-*.tar.xz)))
CACHE := build

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

TOOLS_CFLAGS := -static -O2 -Wall -Wextra -I uapi -pthread
TOOLS_CFLAGS += -DZCDEV_VERSION='"$(VERSION)"'
TOOLS_SRCS := $(wildcard tools/*.c tools/lib/*.c)
LIBZCDEV := tools/lib/zcdev.c tools/lib/zcdev.h
EXAMPLES := $(basename $(wildcard examples/*.c))

.PHONY: all module tools examples selftests check run bench style sparse \
	install dkms-install dkms-remove clean distclean

all: module

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules

tools: tools/zcdev examples

# Each example also builds alone with the line at its top.
examples: $(EXAMPLES)

examples/%: examples/%.c $(LIBZCDEV) uapi/linux/zcdev.h
	$(CC) -static -O2 -Wall -Wextra -I uapi -I tools/lib -o $@ $< tools/lib/zcdev.c

tools/zcdev: $(TOOLS_SRCS) $(wildcard tools/*.h tools/lib/*.h) uapi/linux/zcdev.h VERSION
	$(if $(TOOLS_SRCS),,$(error no tools/*.c to build tools/zcdev from))
	$(CC) $(TOOLS_CFLAGS) -o $@ $(TOOLS_SRCS)

selftests:
	$(MAKE) -C selftests

check:
	KERNELS="$(KERNELS)" V="$(V)" selftests/qemu/check.sh

run:
	@KERNEL="$(KERNEL)" CMD="$(CMD)" V="$(V)" selftests/qemu/run.sh

bench:
	@KERNEL="$(KERNEL)" BENCH_ARGS="$(BENCH_ARGS)" bench/bench.sh

# checkpatch.pl and the two data files it reads next to itself, taken from
# Debian's linux-source-6.1 (no kernel tree is needed with --no-tree).
CHECKPATCH := $(CACHE)/checkpatch/checkpatch.pl
LINUX_SOURCE_DIR := $(basename $(basename $(notdir $(LINUX_SOURCE_TAR))))

$(CHECKPATCH):
	$(if $(LINUX_SOURCE_TAR),,$(error no linux-source tarball: run make check once, or set LINUX_SOURCE_TAR))
	rm -rf $(CACHE)/checkpatch.tmp
	mkdir -p $(CACHE)/checkpatch.tmp
	tar -xJf $(LINUX_SOURCE_TAR) -C $(CACHE)/checkpatch.tmp --strip-components=2 \
		$(addprefix $(LINUX_SOURCE_DIR)/scripts/,checkpatch.pl spelling.txt const_structs.checkpatch)
	rm -rf $(CACHE)/checkpatch
	mv $(CACHE)/checkpatch.tmp $(CACHE)/checkpatch

style: $(CHECKPATCH)
	perl $(CHECKPATCH) --strict --no-tree -f \
		$(filter-out %.mod.c,$(wildcard module/*.c module/*.h)) uapi/linux/zcdev.h

# kbuild does not fail on sparse's findings, so the log is checked here.
sparse:
	mkdir -p $(CACHE)
	$(MAKE) -C $(KDIR) M=$(CURDIR) C=2 modules 2>&1 | tee $(CACHE)/sparse.log
	@! grep -E '^(module|uapi)/.*: (warning|error):' $(CACHE)/sparse.log || \
		{ echo "sparse: findings above (log: $(CACHE)/sparse.log)"; exit 1; }

# modules_install skips depmod when KDIR has no System.map (distribution
# header packages have none), so it is run here. The release is the one
# the module's vermagic carries: Debian's 6.1 headers have "6.1.0-N-amd64"
# there but the upstream "6.1.N" in include/config/kernel.release.
KRELEASE = $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"$$/\1/p' \
	     $(KDIR)/include/generated/utsrelease.h)
UDEV_RULES := $(wildcard udev/*.rules)

install: module tools
	$(MAKE) -C $(KDIR) M=$(CURDIR) modules_install
	depmod -a $(if $(INSTALL_MOD_PATH),-b $(INSTALL_MOD_PATH)) $(KRELEASE)
	install -D -m 0755 tools/zcdev $(DESTDIR)$(PREFIX)/bin/zcdev
	install -D -m 0644 uapi/linux/zcdev.h $(DESTDIR)$(PREFIX)/include/linux/zcdev.h
	$(foreach r,$(UDEV_RULES),install -D -m 0644 $(r) $(DESTDIR)/etc/udev/rules.d/$(notdir $(r));)

# DKMS builds from a copy of the module sources in /usr/src/zcdev-VERSION
# (sources only: no objects or generated files from an in-tree build).
DKMS_SRC := $(DESTDIR)/usr/src/zcdev-$(VERSION)
DKMS_FILES = dkms.conf Kbuild VERSION uapi/linux/zcdev.h module/Kbuild \
	     $(filter-out %.mod.c,$(wildcard module/*.c)) $(wildcard module/*.h)

dkms-install:
	@test -f dkms.conf || { echo "dkms-install: no dkms.conf"; exit 1; }
	rm -rf $(DKMS_SRC)
	mkdir -p $(DKMS_SRC)
	cp --parents -t $(DKMS_SRC) $(DKMS_FILES)
	dkms add -m zcdev -v $(VERSION)
	dkms build -m zcdev -v $(VERSION)
	dkms install -m zcdev -v $(VERSION)

dkms-remove:
	dkms remove -m zcdev -v $(VERSION) --all
	rm -rf $(DKMS_SRC)

clean:
	$(if $(wildcard $(KDIR)/Makefile),$(MAKE) -C $(KDIR) M=$(CURDIR) clean)
	$(MAKE) -C selftests clean
	rm -rf $(CACHE) tools/zcdev $(EXAMPLES)

# Everything the rig built or fetched: the lanes' Debian roots, the kernel
# images and the debug kernels. The host itself holds nothing of the rig's.
distclean: clean
	rm -rf $(ZCDEV_CACHE)
