# SPDX-License-Identifier: GPL-2.0
#
# zcdev: the module is built by kbuild from ./Kbuild; everything else here
# is user space or a wrapper around the QEMU rig in selftests/qemu/.
#
#   make [module]        build module/zcdev.ko against KDIR
#   make tools           static tools/zcdev and the examples/ (all on libzcdev,
#                        linked with pkg-config as a user's program is; with
#                        liburing for io_uring: TOOLS_URING, below)
#   make lib             libzcdev: tools/lib/libzcdev.so.0 (and the file it
#                        names), libzcdev.a, libzcdev.pc, libzcdev-uninstalled.pc
#   make selftests       static test programs in selftests/zcdev/
#   make man-check       the manual pages in man/ render with no warning
#   make check           build, boot and test on every lane in KERNELS (QEMU)
#   make check-pristine  make check and make run in a fresh Debian root that has
#                        only the README's prerequisites (git, make)
#   make run [CMD=...]   a QEMU guest with the module loaded: a shell, or one command
#   make bench           `zcdev bench` in that guest, then its table, JSON and plot
#                        in build/bench-KERNEL.{txt,json,png} (BENCH_ARGS: its options)
#   make style           checkpatch --strict over the module and the uapi header
#   make sparse          sparse (kbuild C=2) in the 6.1 and 6.12 lanes' roots
#   make install         module, tool, libzcdev, headers, man pages, udev rule
#                        and group (install-module, -tools, -lib, -headers,
#                        -man, -udev; DESTDIR, PREFIX); make uninstall undoes each
#   make dkms-install    hand the module to DKMS (again: replaces the first);
#                        make dkms-remove
#   make sign            sign module/zcdev.ko (SIGN_KEY, SIGN_CERT: DKMS's MOK)
#   make deb             the Debian packages (zcdev-dkms, zcdev-tools, libzcdev0,
#                        libzcdev-dev) and the source package in build/deb/
#   make version         the version this tree builds (scripts/version.sh)

KVER ?= $(shell uname -r)
KDIR ?= /lib/modules/$(KVER)/build
PREFIX ?= /usr/local
# VERSION (the file) is the release line; scripts/version.sh adds where
# git says this tree is on it (0.2.0~git20261206.153012.abc1234). One
# string for the module, the tool, the library and the packages;
# ZCDEV_VERSION=... overrides it (the rig passes the host's into its roots).
RELEASE := $(shell head -n 1 VERSION)
VERSION := $(or $(ZCDEV_VERSION),$(shell scripts/version.sh))
# The rig's cache (Debian roots, kernel images, the debug kernel): see
# selftests/qemu/roots.sh. checkpatch comes from the newest linux-source
# the rig installed in its trixie root.
ZCDEV_CACHE ?= /var/cache/zcdev
LINUX_SOURCE_TAR ?= $(lastword $(sort $(wildcard $(ZCDEV_CACHE)/roots/trixie/usr/src/linux-source-*.tar.xz)))
CACHE := build

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

# TOOLS_STATIC= builds a dynamically linked tool (debian/rules does, and
# adds Debian's CPPFLAGS, CFLAGS and LDFLAGS through the environment).
TOOLS_STATIC ?= -static
TOOLS_CFLAGS := $(TOOLS_STATIC) -O2 -Wall -Wextra -pthread
TOOLS_CFLAGS += -DZCDEV_VERSION='"$(VERSION)"' $(if $(TOOLS_STATIC),-DZCDEV_STATIC)
TOOLS_SRCS := $(wildcard tools/*.c)
# The libzcdev the tool links: static, the archive (pkg-config --static);
# dynamic, the shared library by its SONAME.
TOOLS_LIBZCDEV = $(if $(TOOLS_STATIC),$(LIBZCDEV_A),$(LIBZCDEV_SO))
TOOLS_PC_STATIC = $(if $(TOOLS_STATIC),--static)
EXAMPLES := $(basename $(wildcard examples/*.c))

.PHONY: all module tools lib examples selftests check check-pristine run bench style sparse clean distclean version

all: module

# Without the headers kbuild says only "No such file or directory"; say
# which package brings them, or how to name another tree.
module:
	@test -f $(KDIR)/Makefile || { \
		echo "module: no kernel headers in KDIR=$(KDIR)"; \
		echo "  install them: sudo apt install linux-headers-$(KVER)"; \
		echo "  or build for another kernel: make KVER=RELEASE, or KDIR=/path/to/headers"; \
		exit 1; }
	$(MAKE) -C $(KDIR) M=$(CURDIR) ZCDEV_VERSION='$(VERSION)' modules

version:
	@echo $(VERSION)

tools: tools/zcdev examples

# ---- libzcdev --------------------------------------------------------------
#
# A shared library whose SONAME is libzcdev.so.$(LIBZCDEV_SOVERSION), exporting
# only the API of its header (the version script tools/lib/libzcdev.map:
# version node LIBZCDEV_0, then one per release line that added symbols),
# a static archive and a pkg-config file. LIBZCDEV_SOVERSION changes only
# when the ABI breaks; the file's name carries the release line's minor
# and patch.
LIBZCDEV_SOVERSION := 0
LIBZCDEV_SONAME := libzcdev.so.$(LIBZCDEV_SOVERSION)
LIBZCDEV_REALNAME := $(LIBZCDEV_SONAME).$(word 2,$(subst ., ,$(RELEASE))).$(word 3,$(subst ., ,$(RELEASE)))
LIBZCDEV_SRC := tools/lib/zcdev.c
LIBZCDEV_H := tools/lib/libzcdev.h
LIBZCDEV_MAP := tools/lib/libzcdev.map
LIBZCDEV_SO := tools/lib/libzcdev.so
LIBZCDEV_A := tools/lib/libzcdev.a
LIBZCDEV_PC := tools/lib/libzcdev.pc
LIBZCDEV_UPC := tools/lib/libzcdev-uninstalled.pc
LIB_CFLAGS := -O2 -Wall -Wextra -I uapi -DZCDEV_VERSION='"$(VERSION)"'
LIBZCDEV_OUT := tools/lib/$(LIBZCDEV_REALNAME) tools/lib/$(LIBZCDEV_SONAME) \
		$(LIBZCDEV_SO) $(LIBZCDEV_A) $(LIBZCDEV_PC) $(LIBZCDEV_UPC)

# The tool, the examples and the selftests take libzcdev's flags from
# pkg-config, as a program of one's own does from the installed
# libzcdev.pc: here PKG_CONFIG_PATH is tools/lib, where pkg-config finds
# libzcdev-uninstalled.pc (and prefers it to libzcdev.pc, made for
# PREFIX). PKG_CONFIG_DISABLE_UNINSTALLED in the environment would turn
# that preference off: it is not passed on.
PKG_CONFIG ?= pkg-config
LIBZCDEV_PKG_CONFIG := PKG_CONFIG_PATH=tools/lib $(PKG_CONFIG)
unexport PKG_CONFIG_DISABLE_UNINSTALLED
# A recipe's first line where pkg-config is used: without it, the
# compiler would only say that libzcdev.h is missing.
need_pkg_config = @command -v $(firstword $(PKG_CONFIG)) > /dev/null || { \
	echo "$@: $(firstword $(PKG_CONFIG)) is not installed: the tool, the examples and the" \
	     "selftests take libzcdev's flags from it (Debian: apt install pkgconf)"; exit 1; }

# io_uring (put and get --method uring, the bench's uring rows,
# examples/uring_rw) through liburing, Debian's liburing-dev, linked as
# the tool is (static by default). TOOLS_URING=auto builds it in when
# pkg-config finds liburing, yes requires it (debian/rules, and the rig,
# whose roots have liburing-dev), no leaves it out: the tool then says
# that --method uring was not built in, and examples/uring_rw is skipped.
TOOLS_URING ?= auto
URING_ON := $(firstword $(filter yes,$(TOOLS_URING) $(if $(filter auto,$(TOOLS_URING)),$(shell \
	$(PKG_CONFIG) --exists liburing 2> /dev/null && echo yes))))
need_liburing = @[ "$(TOOLS_URING)" != yes ] || $(PKG_CONFIG) --exists liburing || { \
	echo "$@: TOOLS_URING=yes, but pkg-config finds no liburing (Debian: apt install liburing-dev)"; \
	exit 1; }
URING_CFLAGS = $(if $(URING_ON),-DZCDEV_HAVE_URING $$($(PKG_CONFIG) --cflags liburing))
URING_LIBS = $(if $(URING_ON),$$($(PKG_CONFIG) --libs $(1) liburing))

lib: $(LIBZCDEV_OUT)

tools/lib/zcdev.o: $(LIBZCDEV_SRC) $(LIBZCDEV_H) uapi/linux/zcdev.h VERSION
	$(CC) $(LIB_CFLAGS) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

tools/lib/zcdev.pic.o: $(LIBZCDEV_SRC) $(LIBZCDEV_H) uapi/linux/zcdev.h VERSION
	$(CC) $(LIB_CFLAGS) $(CPPFLAGS) $(CFLAGS) -fPIC -c -o $@ $<

tools/lib/$(LIBZCDEV_REALNAME): tools/lib/zcdev.pic.o $(LIBZCDEV_MAP)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,$(LIBZCDEV_SONAME) \
		-Wl,--version-script=$(LIBZCDEV_MAP) -Wl,--no-undefined -o $@ $<

tools/lib/$(LIBZCDEV_SONAME): tools/lib/$(LIBZCDEV_REALNAME)
	ln -sf $(LIBZCDEV_REALNAME) $@

$(LIBZCDEV_SO): tools/lib/$(LIBZCDEV_SONAME)
	ln -sf $(LIBZCDEV_SONAME) $@

$(LIBZCDEV_A): tools/lib/zcdev.o
	rm -f $@
	$(AR) rcs $@ $<

# The .pc for PREFIX and LIBDIR as this make run has them: what
# install-lib installs. (The FORCE: a later install may name others.)
$(LIBZCDEV_PC): tools/lib/libzcdev.pc.in FORCE
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

# The .pc of the library in this tree (paths relative to the file, so
# the same file serves wherever the tree is), for the tree's own
# programs. It changes only with the version, which changes no flag: the
# programs have it as an order-only prerequisite (a make in a root without
# git, where the version is VERSION's, relinks nothing).
$(LIBZCDEV_UPC): tools/lib/libzcdev-uninstalled.pc.in FORCE
	sed -e 's|@VERSION@|$(VERSION)|' $< > $@.tmp
	if cmp -s $@.tmp $@; then rm $@.tmp; else mv $@.tmp $@; fi

.PHONY: FORCE
FORCE:

# Each example also builds alone with the line at its top (against an
# installed libzcdev). Static, like the tool: the rig's guests run them
# without the library installed. Those that include <liburing.h> link
# liburing too, and are left out when it is (TOOLS_URING).
EXAMPLES_URING := $(basename $(shell grep -l '<liburing.h>' examples/*.c 2> /dev/null))
examples: $(if $(URING_ON),$(EXAMPLES),$(filter-out $(EXAMPLES_URING),$(EXAMPLES)))
	$(if $(URING_ON),,$(if $(EXAMPLES_URING),@echo "examples: $(EXAMPLES_URING) not built: no liburing (Debian: apt install liburing-dev)"))

$(EXAMPLES_URING): EXAMPLE_LIBS = $(call URING_LIBS,--static)

examples/%: examples/%.c $(LIBZCDEV_A) $(LIBZCDEV_H) uapi/linux/zcdev.h | $(LIBZCDEV_UPC)
	$(need_pkg_config)
	$(need_liburing)
	$(CC) -static -O2 -Wall -Wextra $$($(LIBZCDEV_PKG_CONFIG) --cflags libzcdev) \
		-o $@ $< $$($(LIBZCDEV_PKG_CONFIG) --libs --static libzcdev) $(EXAMPLE_LIBS)

tools/zcdev: $(TOOLS_SRCS) $(wildcard tools/*.h) $(LIBZCDEV_H) $(TOOLS_LIBZCDEV) \
	     uapi/linux/zcdev.h VERSION | $(LIBZCDEV_UPC)
	$(if $(TOOLS_SRCS),,$(error no tools/*.c to build tools/zcdev from))
	$(need_pkg_config)
	$(need_liburing)
	$(CC) $(TOOLS_CFLAGS) $(CPPFLAGS) $(CFLAGS) $$($(LIBZCDEV_PKG_CONFIG) --cflags libzcdev) \
		$(URING_CFLAGS) $(LDFLAGS) -o $@ $(TOOLS_SRCS) \
		$$($(LIBZCDEV_PKG_CONFIG) --libs $(TOOLS_PC_STATIC) libzcdev) \
		$(call URING_LIBS,$(TOOLS_PC_STATIC))

# The selftests link the archive through the same .pc (selftests/zcdev/Makefile).
selftests: $(LIBZCDEV_A) $(LIBZCDEV_UPC)
	$(need_pkg_config)
	$(MAKE) -C selftests

check:
	KERNELS="$(KERNELS)" V="$(V)" selftests/qemu/check.sh

# make check in a fresh Debian root holding only the README's
# prerequisites, then make run CMD='zcdev info' there (what .ci/run does).
check-pristine:
	KERNELS="$(KERNELS)" V="$(V)" selftests/qemu/pristine.sh

run:
	@KERNEL="$(KERNEL)" CMD="$(CMD)" V="$(V)" selftests/qemu/run.sh

bench:
	@KERNEL="$(KERNEL)" BENCH_ARGS="$(BENCH_ARGS)" bench/bench.sh

# groff's own warnings and man(1)'s, for each page; any output fails.

.PHONY: man-check
man-check:
	@for p in $(MAN_PAGES); do \
		out=$$(groff -man -z -wall $$p 2>&1; \
		       LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l $$p 2>&1 >/dev/null); \
		if [ -n "$$out" ]; then echo "$$out"; echo "man-check: $$p: FAIL"; exit 1; fi; \
		echo "man-check: $$p: ok"; \
	done

# checkpatch.pl and the two data files it reads next to itself, taken from
# Debian's linux-source-6.1 (no kernel tree is needed with --no-tree).
CHECKPATCH := $(CACHE)/checkpatch/checkpatch.pl
LINUX_SOURCE_DIR := $(basename $(basename $(notdir $(LINUX_SOURCE_TAR))))

$(CHECKPATCH):
	selftests/qemu/deps.sh style
	$(if $(LINUX_SOURCE_TAR),,$(error no linux-source tarball: run make check once, or set LINUX_SOURCE_TAR))
	rm -rf $(CACHE)/checkpatch.tmp
	mkdir -p $(CACHE)/checkpatch.tmp
	tar -xJf $(LINUX_SOURCE_TAR) -C $(CACHE)/checkpatch.tmp --strip-components=2 \
		$(addprefix $(LINUX_SOURCE_DIR)/scripts/,checkpatch.pl spelling.txt const_structs.checkpatch)
	rm -rf $(CACHE)/checkpatch
	mv $(CACHE)/checkpatch.tmp $(CACHE)/checkpatch

style: $(CHECKPATCH)
	selftests/qemu/deps.sh style
	perl $(CHECKPATCH) --strict --no-tree -f \
		$(filter-out %.mod.c,$(wildcard module/*.c module/*.h)) uapi/linux/zcdev.h

# sparse inside the lanes' Debian roots (selftests/qemu/sparse.sh): 6.1
# and 6.12, where Debian's sparse can parse the kernel's headers.
sparse:
	selftests/qemu/sparse.sh

# ---- Installing, by hand or for a package --------------------------------
#
# `make install` = install-module install-tools install-headers install-man
# install-udev, each undone by its uninstall-* twin. DESTDIR stages into a
# directory (a package's tree): then nothing outside it is touched, no
# depmod, no group, no udev reload. PREFIX (default /usr/local) places the
# tool, the header, the man pages and the examples; the module goes where
# modprobe finds it (/lib/modules/RELEASE/extra) and configuration under
# SYSCONFDIR (/etc) whatever PREFIX is.

BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/zcdev
SYSCONFDIR ?= /etc
UDEVRULESDIR ?= $(SYSCONFDIR)/udev/rules.d
SYSUSERSDIR ?= $(SYSCONFDIR)/sysusers.d
INSTALL ?= install

# The release the module's vermagic carries, read from KDIR: Debian's 6.1
# headers have "6.1.0-N-amd64" there but the upstream "6.1.N" in
# include/config/kernel.release.
KRELEASE = $(shell sed -n 's/^\#define UTS_RELEASE "\(.*\)"$$/\1/p' \
	     $(KDIR)/include/generated/utsrelease.h 2>/dev/null)
MODDIR = /lib/modules/$(KRELEASE)/extra
UDEV_RULES := $(wildcard udev/*.rules)
# Whatever man/ holds when make runs: man/zcdev.1 goes to man1/ and so on.
MAN_PAGES = $(wildcard man/*.[1-8])
MODPROBE_CONF := etc/modprobe.d/zcdev.conf
MODULES_LOAD_CONF := etc/modules-load.d/zcdev.conf
SYSUSERS_CONF := etc/sysusers.d/zcdev.conf

.PHONY: install uninstall install-module uninstall-module install-tools \
	uninstall-tools install-lib uninstall-lib install-headers \
	uninstall-headers install-man uninstall-man install-udev uninstall-udev

install: install-module install-tools install-lib install-headers install-man install-udev
uninstall: uninstall-module uninstall-tools uninstall-lib uninstall-headers uninstall-man uninstall-udev
	$(MAKE) --no-print-directory uninstall-dirs

# The directories an install made (PREFIX/include/linux, say), listed in
# DOCDIR/installed-dirs as each install-* target creates them, so that
# `make uninstall` removes those once empty and never one that was there
# before. Staging (DESTDIR) keeps no list: a package's files are dpkg's.
DIRS_MANIFEST = $(DOCDIR)/installed-dirs
# $(call install_dirs,DIR...)
install_dirs = @for t in $(DOCDIR) $(1); do \
	d=$(DESTDIR)$$t new=; \
	while [ ! -d "$$d" ]; do new="$$d $$new"; d=$$(dirname "$$d"); done; \
	mkdir -p "$(DESTDIR)$$t"; \
	$(if $(DESTDIR),:,for n in $$new; do echo "$$n" >> $(DIRS_MANIFEST); done); \
	done

.PHONY: uninstall-dirs
uninstall-dirs:
	@if [ -z "$(DESTDIR)" ] && [ -f $(DIRS_MANIFEST) ]; then \
		dirs=$$(sort -ru $(DIRS_MANIFEST)); rm -f $(DIRS_MANIFEST); \
		for d in $$dirs; do \
			[ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d"; \
		done; \
	fi

# The module as built (and signed, after `make sign`); the modprobe.d file
# of commented options only where there is none yet, so an edited one
# survives a reinstall; the modules-load.d file as an example to copy.
install-module: module
	@test -n "$(KRELEASE)" || { echo "install-module: no kernel headers in KDIR=$(KDIR)"; exit 1; }
	$(call install_dirs,$(MODDIR) $(SYSCONFDIR)/modprobe.d $(DOCDIR)/examples/modules-load.d)
	$(INSTALL) -D -m 0644 module/zcdev.ko $(DESTDIR)$(MODDIR)/zcdev.ko
	test -e $(DESTDIR)$(SYSCONFDIR)/modprobe.d/zcdev.conf || \
		$(INSTALL) -D -m 0644 $(MODPROBE_CONF) $(DESTDIR)$(SYSCONFDIR)/modprobe.d/zcdev.conf
	$(INSTALL) -D -m 0644 $(MODULES_LOAD_CONF) $(DESTDIR)$(DOCDIR)/examples/modules-load.d/zcdev.conf
	$(if $(DESTDIR),,depmod -a $(KRELEASE))

# The modprobe.d file goes only if it is still ours, unedited.
uninstall-module:
	@test -n "$(KRELEASE)" || { echo "uninstall-module: no kernel headers in KDIR=$(KDIR)"; exit 1; }
	rm -f $(DESTDIR)$(MODDIR)/zcdev.ko
	[ ! -d $(DESTDIR)$(MODDIR) ] || rmdir --ignore-fail-on-non-empty $(DESTDIR)$(MODDIR)
	if cmp -s $(MODPROBE_CONF) $(DESTDIR)$(SYSCONFDIR)/modprobe.d/zcdev.conf; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/modprobe.d/zcdev.conf; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/modprobe.d/zcdev.conf ]; then \
		echo "uninstall-module: $(SYSCONFDIR)/modprobe.d/zcdev.conf was edited: left in place"; \
	fi
	rm -f $(DESTDIR)$(DOCDIR)/examples/modules-load.d/zcdev.conf
	for d in $(DESTDIR)$(DOCDIR)/examples/modules-load.d $(DESTDIR)$(DOCDIR)/examples \
		 $(DESTDIR)$(DOCDIR); do \
		[ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d"; \
	done
	$(if $(DESTDIR),,depmod -a $(KRELEASE))

install-tools: tools/zcdev
	$(call install_dirs,$(BINDIR))
	$(INSTALL) -D -m 0755 tools/zcdev $(DESTDIR)$(BINDIR)/zcdev

uninstall-tools:
	rm -f $(DESTDIR)$(BINDIR)/zcdev

# libzcdev: the library by its file name, the SONAME link (ldconfig's, made
# here so a staged tree has it), the development link, the archive, the
# .pc and the header, <libzcdev.h>. ldconfig on the running system only.
install-lib: lib
	$(call install_dirs,$(LIBDIR) $(PKGCONFIGDIR) $(INCLUDEDIR))
	$(INSTALL) -m 0644 tools/lib/$(LIBZCDEV_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIBZCDEV_REALNAME)
	ln -sf $(LIBZCDEV_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIBZCDEV_SONAME)
	ln -sf $(LIBZCDEV_SONAME) $(DESTDIR)$(LIBDIR)/libzcdev.so
	$(INSTALL) -m 0644 $(LIBZCDEV_A) $(DESTDIR)$(LIBDIR)/libzcdev.a
	$(INSTALL) -m 0644 $(LIBZCDEV_PC) $(DESTDIR)$(PKGCONFIGDIR)/libzcdev.pc
	$(INSTALL) -m 0644 $(LIBZCDEV_H) $(DESTDIR)$(INCLUDEDIR)/libzcdev.h
	$(if $(DESTDIR),,ldconfig)

uninstall-lib:
	rm -f $(DESTDIR)$(LIBDIR)/$(LIBZCDEV_REALNAME) $(DESTDIR)$(LIBDIR)/$(LIBZCDEV_SONAME) \
	      $(DESTDIR)$(LIBDIR)/libzcdev.so $(DESTDIR)$(LIBDIR)/libzcdev.a \
	      $(DESTDIR)$(PKGCONFIGDIR)/libzcdev.pc $(DESTDIR)$(INCLUDEDIR)/libzcdev.h
	$(if $(DESTDIR),,ldconfig)

install-headers:
	$(call install_dirs,$(INCLUDEDIR)/linux)
	$(INSTALL) -D -m 0644 uapi/linux/zcdev.h $(DESTDIR)$(INCLUDEDIR)/linux/zcdev.h

uninstall-headers:
	rm -f $(DESTDIR)$(INCLUDEDIR)/linux/zcdev.h

install-man:
	$(call install_dirs,$(sort $(foreach p,$(MAN_PAGES),$(MANDIR)/man$(patsubst .%,%,$(suffix $(p))))))
	$(if $(MAN_PAGES),,@echo "install-man: no man pages in man/")
	$(foreach p,$(MAN_PAGES),$(INSTALL) -D -m 0644 $(p) \
		$(DESTDIR)$(MANDIR)/man$(patsubst .%,%,$(suffix $(p)))/$(notdir $(p));)

uninstall-man:
	$(foreach p,$(MAN_PAGES),rm -f $(DESTDIR)$(MANDIR)/man$(patsubst .%,%,$(suffix $(p)))/$(notdir $(p));)

# The rule gives every ring's node to group zcdev (the control device
# stays root's);
# the sysusers.d entry declares the group, and on the running system (no
# DESTDIR) the group is created now, by systemd-sysusers or else groupadd,
# and udev re-applies the rule to the devices that already exist (zcdev*:
# every ring). uninstall-udev keeps the group: files
# may belong to it, and a later install finds it again.
install-udev:
	$(call install_dirs,$(UDEVRULESDIR) $(SYSUSERSDIR))
	$(foreach r,$(UDEV_RULES),$(INSTALL) -D -m 0644 $(r) $(DESTDIR)$(UDEVRULESDIR)/$(notdir $(r));)
	$(INSTALL) -D -m 0644 $(SYSUSERS_CONF) $(DESTDIR)$(SYSUSERSDIR)/zcdev.conf
ifeq ($(DESTDIR),)
	if command -v systemd-sysusers >/dev/null; then \
		systemd-sysusers $(SYSUSERSDIR)/zcdev.conf; \
	elif ! getent group zcdev >/dev/null; then \
		groupadd --system zcdev; \
	fi
	if command -v udevadm >/dev/null && [ -d /run/udev ]; then \
		udevadm control --reload && \
		udevadm trigger --action=change --subsystem-match=misc --sysname-match='zcdev*'; \
	fi
endif

uninstall-udev:
	$(foreach r,$(UDEV_RULES),rm -f $(DESTDIR)$(UDEVRULESDIR)/$(notdir $(r));)
	rm -f $(DESTDIR)$(SYSUSERSDIR)/zcdev.conf
ifeq ($(DESTDIR),)
	if command -v udevadm >/dev/null && [ -d /run/udev ]; then udevadm control --reload; fi
	@! getent group zcdev >/dev/null || \
		echo "uninstall-udev: group zcdev kept (remove it with: groupdel zcdev)"
endif

# ---- DKMS ----------------------------------------------------------------
#
# DKMS builds from a copy of the module sources in /usr/src/zcdev-VERSION
# (sources only: no objects or generated files from an in-tree build);
# debian/rules ships the same copy in zcdev-dkms. dkms-install first takes
# out what an earlier run registered, so a second run replaces the first
# instead of failing on "the same module/version combo". It builds for
# KVER (default: the running kernel); DKMS itself builds for every kernel
# installed later.
DKMS_SRC := $(DESTDIR)/usr/src/zcdev-$(VERSION)
DKMS_FILES = dkms.conf Kbuild VERSION uapi/linux/zcdev.h module/Kbuild \
	     $(filter-out %.mod.c,$(wildcard module/*.c)) $(wildcard module/*.h)

.PHONY: install-dkms-src dkms-install dkms-remove

install-dkms-src:
	@test -f dkms.conf || { echo "install-dkms-src: no dkms.conf"; exit 1; }
	rm -rf $(DKMS_SRC)
	mkdir -p $(DKMS_SRC)
	cp --parents -t $(DKMS_SRC) $(DKMS_FILES)
	scripts/version.sh --stamp $(DKMS_SRC) '$(VERSION)'

# A zcdev-dkms package owns /usr/src/zcdev-VERSION: leave it to dpkg, for
# an install as for a removal. $(call not_packaged,TARGET)
not_packaged = @! dpkg-query -S /usr/src/zcdev-$(VERSION) >/dev/null 2>&1 || \
	{ echo "$(1): /usr/src/zcdev-$(VERSION) belongs to $$(dpkg-query -S /usr/src/zcdev-$(VERSION) | cut -d: -f1);" \
	       "use the package (or remove it first)"; exit 1; }

dkms-install:
	$(call not_packaged,dkms-install)
	$(MAKE) --no-print-directory dkms-remove
	$(MAKE) --no-print-directory install-dkms-src DESTDIR=
	dkms add -m zcdev -v $(VERSION)
	dkms build -m zcdev -v $(VERSION) -k $(KVER)
	dkms install -m zcdev -v $(VERSION) -k $(KVER)

dkms-remove:
	$(call not_packaged,dkms-remove)
	if [ -n "$$(dkms status -m zcdev -v $(VERSION) 2>/dev/null)" ]; then \
		dkms remove -m zcdev -v $(VERSION) --all; \
	fi
	rm -rf /usr/src/zcdev-$(VERSION)

# ---- Secure Boot ---------------------------------------------------------
#
# A kernel that enforces module signatures (Secure Boot with lockdown)
# refuses an unsigned module with "Key was rejected by service". make sign
# signs module/zcdev.ko with the kernel's own scripts/sign-file and a key
# and certificate the machine trusts: by default the MOK pair Debian's dkms
# creates (and signs its own builds with), which `mokutil --import` enrolls
# (README: On a real machine). A signature left by an earlier run is taken
# off first, so signing twice, or with another key, leaves one signature.
SIGN_KEY ?= /var/lib/dkms/mok.key
SIGN_CERT ?= /var/lib/dkms/mok.pub
SIGN_FILE ?= $(KDIR)/scripts/sign-file
SIGN_HASH ?= $(or $(shell sed -n 's/^CONFIG_MODULE_SIG_HASH="\(.*\)"$$/\1/p' \
	       $(KDIR)/.config 2>/dev/null),sha256)
MODULE_SIG_MAGIC := ~Module signature appended~

.PHONY: sign
sign: module
	@test -r "$(SIGN_KEY)" || { echo "sign: cannot read the key SIGN_KEY=$(SIGN_KEY)" \
		"(root only? see README: Secure Boot)"; exit 1; }
	@test -r "$(SIGN_CERT)" || { echo "sign: cannot read the certificate SIGN_CERT=$(SIGN_CERT)"; exit 1; }
	@test -x "$(SIGN_FILE)" || { echo "sign: no $(SIGN_FILE) (kernel headers for $(KVER)?)"; exit 1; }
	@ko=module/zcdev.ko; \
	if [ "$$(tail -c 28 $$ko | tr -d '\0')" = "$(MODULE_SIG_MAGIC)" ]; then \
		len=$$(tail -c 32 $$ko | head -c 4 | od -An -tu1 | \
		       awk '{ print (($$1 * 256 + $$2) * 256 + $$3) * 256 + $$4 }'); \
		echo "  UNSIGN  $$ko (an earlier signature, $$len bytes)"; \
		truncate -s -$$((len + 40)) $$ko; \
	fi
	$(SIGN_FILE) $(SIGN_HASH) $(SIGN_KEY) $(SIGN_CERT) module/zcdev.ko
	@echo "  SIGNED  module/zcdev.ko: $$(modinfo -F signer module/zcdev.ko)" \
		"($$(modinfo -F sig_hashalgo module/zcdev.ko))"

# ---- Debian packages -----------------------------------------------------
#
# dpkg-buildpackage writes its packages next to the tree it builds, so the
# tree is copied first: the files git tracks (or, without git, everything
# but build/), stamped with this tree's version (VERSION, dkms.conf and
# debian/changelog's top entry: scripts/version.sh --stamp), built there
# (the source package and the binaries), and moved to build/deb/.
DEB_DIR := $(CACHE)/deb
DEB_SRC := $(DEB_DIR)/src/zcdev-$(VERSION)

.PHONY: deb
deb:
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_SRC)
	if git rev-parse --show-toplevel >/dev/null 2>&1; then \
		git ls-files -co --exclude-standard | while IFS= read -r f; do \
			[ ! -e "$$f" ] || cp -P --parents -t $(DEB_SRC) "$$f"; \
		done; \
	else \
		tar -c --exclude=./$(CACHE) --exclude=./.git . | tar -x -C $(DEB_SRC); \
	fi
	scripts/version.sh --stamp $(DEB_SRC) '$(VERSION)'
	cd $(DEB_SRC) && dpkg-buildpackage -us -uc
	mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/src/*.changes $(DEB_DIR)/src/*.buildinfo \
	   $(DEB_DIR)/src/*.dsc $(DEB_DIR)/src/*.tar.* $(DEB_DIR)/
	rm -rf $(DEB_DIR)/src
	@ls -1 $(DEB_DIR)/*.deb $(DEB_DIR)/*.dsc

clean:
	$(if $(wildcard $(KDIR)/Makefile),$(MAKE) -C $(KDIR) M=$(CURDIR) clean)
	$(MAKE) -C selftests clean
	rm -rf $(CACHE) tools/zcdev $(EXAMPLES) tools/lib/*.o $(LIBZCDEV_OUT)

# Everything the rig built or fetched: the lanes' Debian roots, the kernel
# images and the debug kernels. The host itself holds nothing of the rig's.
distclean: clean
	rm -rf $(ZCDEV_CACHE)
