SHELL = /bin/bash
# ngx-tunnel: build, run, test.  `make` builds build/tunneld,
# build/tunnelctl and build/ngx_http_tunnel_module.so; `make run` brings up
# the whole dev stack; `make test` runs every test.  Missing Debian packages
# are installed by `make deps` (as root), which the other targets call.

CC       ?= cc
CFLAGS   ?= -O2 -g
WARN      = -Wall -Wextra -Werror
PKGS      = libssh hiredis libpq jansson
B         = build

# `make test SANITIZE=1`: tunneld, tunnelctl, the unit tests and the nginx
# modules built with ASan + UBSan into build-asan/ (build/ stays the normal
# build), and the whole suite run against them.  The harness
# (tools/lib/NgxTunnel/Stack.pm) finds the binaries through
# NGX_TUNNEL_BUILD, starts the stock nginx with libasan preloaded, and
# fails a test whose services wrote a report into $(B)/sanitizer/; every
# other sanitized process (tunnelctl run by a test) writes there too, and
# the run fails at the end if anything did.  docs/SANITIZERS.md.
ifeq ($(SANITIZE),1)
B          = build-asan
# gcc's UBSan beside ASan ignores log_path: its reports go to stderr,
# which the harness reads in the services' logs; a program a test runs
# itself stops at the first (halt_on_error), so its exit status tells
SAN_FLAGS  = -fsanitize=address,undefined -fno-omit-frame-pointer
# gcc's UBSan null checks make -Wformat-overflow see NULL formats that
# no caller passes (false positives): that warning is off here only
CFLAGS    += $(SAN_FLAGS) -Wno-format-overflow
SAN_DIR    = $(CURDIR)/$(B)/sanitizer
SAN_ENV    = NGX_TUNNEL_BUILD=$(CURDIR)/$(B) NGX_TUNNEL_SANITIZE=$(SAN_DIR) \
             ASAN_OPTIONS=log_path=$(SAN_DIR)/other-asan:detect_leaks=1 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
endif

# `make test VALGRIND=1`: the end-to-end tests that stand tunneld's
# slowness under valgrind memcheck (the harness wraps tunneld, with
# timeouts scaled by TEST_TIME_SCALE); errors and definite leaks fail the
# test that caused them (Stack.pm).  Not t/080-workers.t: valgrind keeps
# fds of its own, and that test checks tunneld's open-files arithmetic.
# docs/SANITIZERS.md.
ifeq ($(VALGRIND),1)
VG_DIR    = $(CURDIR)/$(B)/valgrind
VG_TESTS ?= t/010-basic.t t/020-names.t t/025-system-names.t \
            t/030-streaming.t t/040-refusals.t t/057-error-pages.t \
            t/060-takeover.t t/070-session-output.t t/072-no-tunnel.t \
            t/110-api.t t/165-sanitizers.t
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ALL_CFLAGS = $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -Icommon \
             -I$(B)/gen $(PKG_CFLAGS)

COMMON_SRC   = common/tnl_name.c common/tnl_embedded.c common/tnl_code.c
TUNNELD_SRC  = $(sort $(wildcard sshd/*.c)) $(COMMON_SRC) $(B)/gen/redis_scripts.c
TUNNELCTL_SRC = $(sort $(wildcard tunnelctl/*.c)) $(COMMON_SRC) $(B)/gen/sql_migrations.c
MODULE_SRC   = $(wildcard ngx_tunnel_module/*.c ngx_tunnel_module/*.h) \
               $(COMMON_SRC) common/tnl_name.h config

UNIT_TESTS   = $(patsubst t/unit/%.c,$(B)/unit/%,$(wildcard t/unit/*.c))

.PHONY: all deps run test unit bench clean install uninstall deb

# the admin module (admin/) builds in the same nginx configure run
ADMIN_CONFIG := $(wildcard admin/config)
ADMIN_SRC    = $(wildcard admin/*.c admin/*.h admin/config)
ADMIN_SO     = $(if $(ADMIN_CONFIG),$(B)/ngx_http_tunnel_admin_module.so)

BINARIES = $(B)/tunneld $(B)/tunnelctl $(B)/ngx_http_tunnel_module.so \
           $(ADMIN_SO)

all: deps-check binaries

# the build alone, without the dependency check (debian/rules, install)
.PHONY: binaries
binaries: $(BINARIES)

# `deps-check` is cheap when everything is installed; it installs otherwise
.PHONY: deps-check
deps-check:
	@tools/install-deps --check-or-install

deps:
	tools/install-deps

$(B)/gen/redis_scripts.c: $(wildcard redis-scripts/*.lua) tools/embed.pl
	@mkdir -p $(B)/gen
	tools/embed.pl tnl_redis_scripts $@ $(wildcard redis-scripts/*.lua)

$(B)/gen/sql_migrations.c: $(wildcard sql/*.sql) tools/embed.pl
	@mkdir -p $(B)/gen
	tools/embed.pl tnl_sql_migrations $@ $(wildcard sql/*.sql)

$(B)/tunneld: $(TUNNELD_SRC) $(wildcard sshd/*.h common/*.h)
	@mkdir -p $(B)
	$(CC) $(ALL_CFLAGS) -Isshd -o $@ $(TUNNELD_SRC) $(PKG_LIBS) -lpthread

$(B)/tunnelctl: $(TUNNELCTL_SRC) $(wildcard tunnelctl/*.h common/*.h)
	@mkdir -p $(B)
	$(CC) $(ALL_CFLAGS) -Itunnelctl -o $@ $(TUNNELCTL_SRC) $(PKG_LIBS)

# The module is built against Debian's nginx-dev with the flags of the stock
# binary (conf_flags), so `load_module` accepts it (same --with-compat
# signature).  Only `make modules` runs: no nginx binary is built.
$(B)/ngx_http_tunnel_module.so: $(MODULE_SRC) $(ADMIN_SRC)
	@rm -rf $(B)/nginx-src && mkdir -p $(B) && cp -r /usr/share/nginx/src $(B)/nginx-src
	cd $(B)/nginx-src && . ./conf_flags && \
	    ./configure "$${NGX_CONF_FLAGS[@]}" --add-dynamic-module=$(CURDIR) \
	        $(if $(ADMIN_CONFIG),--add-dynamic-module=$(CURDIR)/admin) \
	        --with-cc-opt="$(WARN) -Wno-unused-parameter $(SAN_FLAGS)" \
        $(if $(SAN_FLAGS),--with-ld-opt="$(SAN_FLAGS)") >configure.log 2>&1 \
	    || { tail -30 configure.log; exit 1; }
	$(MAKE) -C $(B)/nginx-src -f objs/Makefile modules
	@# copy then rename: a running nginx has the old file mapped, and
	@# rewriting it in place would crash that nginx
	cp $(B)/nginx-src/objs/ngx_http_tunnel_module.so $@.tmp && mv $@.tmp $@
	$(if $(ADMIN_CONFIG),cp $(B)/nginx-src/objs/ngx_http_tunnel_admin_module.so \
	    $(B)/ngx_http_tunnel_admin_module.so.tmp && \
	    mv $(B)/ngx_http_tunnel_admin_module.so.tmp $(B)/ngx_http_tunnel_admin_module.so)

$(if $(ADMIN_CONFIG),$(B)/ngx_http_tunnel_admin_module.so): $(B)/ngx_http_tunnel_module.so

# t/unit/httplog.c tests a daemon file: linked in for that test only
$(B)/unit/%: t/unit/%.c $(COMMON_SRC) $(wildcard common/*.h) \
             sshd/httplog.c sshd/httplog.h
	@mkdir -p $(B)/unit
	$(CC) $(ALL_CFLAGS) -Isshd -o $@ $< $(COMMON_SRC) \
	    $(if $(filter httplog,$*),sshd/httplog.c)

unit: $(UNIT_TESTS)

run: all
	tools/run

# every test: C unit tests (t/000-unit.t runs build/unit/*) and t/*.t;
# `make test T=t/010-basic.t` runs one file, PROVE_FLAGS= makes it quiet
PROVE_FLAGS ?= -v
test: all unit
ifeq ($(SANITIZE),1)
	@rm -rf $(SAN_DIR) && mkdir -p $(SAN_DIR) && chmod 1777 $(SAN_DIR)
	env -u MAKEFLAGS -u MAKELEVEL -u MFLAGS -u SANITIZE $(SAN_ENV) \
	    prove $(PROVE_FLAGS) $(if $(T),$(T),-r t/)
	@tools/sanitizer-reports $(SAN_DIR)
else ifeq ($(VALGRIND),1)
	@rm -rf $(VG_DIR) && mkdir -p $(VG_DIR)
	NGX_TUNNEL_VALGRIND=$(VG_DIR) TEST_TIME_SCALE=4 \
	    prove $(PROVE_FLAGS) $(if $(T),$(T),$(VG_TESTS))
else
	prove $(PROVE_FLAGS) $(if $(T),$(T),-r t/)
endif

bench: all
	tools/bench

# libFuzzer targets (t/fuzz/, docs/FUZZING.md): `make fuzz FUZZ_S=60`
# replays the committed corpora, then fuzzes each target FUZZ_S seconds
FUZZ_S ?= 60
.PHONY: fuzz
fuzz: all
	t/fuzz/run -t $(FUZZ_S)

# the long churn run (issue 14): t/195-soak.t for SOAK_S seconds (10,000
# tunnels opened and closed in 600 s), RSS and fds of tunneld and nginx
# sampled; `make test` runs it for 60 s
SOAK_S ?= 600
.PHONY: soak
soak: all
	SOAK_S=$(SOAK_S) prove -v t/195-soak.t

clean:
	rm -rf $(B)

# `make install PREFIX=/usr/local DESTDIR=/tmp/stage` (docs/DEPLOY.md).
# The nginx modules go where Debian's nginx looks for them, whatever the
# PREFIX; the config file is installed only when there is none yet, and
# `make uninstall` removes it only while it is unchanged.
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
DATADIR     ?= $(PREFIX)/share/ngx-tunnel
SYSCONFDIR  ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
NGINX_MODULES_DIR  ?= /usr/lib/nginx/modules
NGINX_MODULES_CONF ?= /usr/share/nginx/modules-available
INSTALL     ?= install

D = $(DESTDIR)
NGX_SO = ngx_http_tunnel_module.so $(if $(ADMIN_CONFIG),ngx_http_tunnel_admin_module.so)

install: binaries
	$(INSTALL) -d $(D)$(SBINDIR) $(D)$(BINDIR) $(D)$(NGINX_MODULES_DIR) \
	    $(D)$(NGINX_MODULES_CONF) $(D)$(DATADIR)/sql \
	    $(D)$(DATADIR)/redis-scripts $(D)$(DATADIR)/examples \
	    $(D)$(SYSCONFDIR)/tunneld $(D)$(UNITDIR) $(D)$(SYSUSERSDIR)
	$(INSTALL) -m 755 $(B)/tunneld $(D)$(SBINDIR)/tunneld
	$(INSTALL) -m 755 $(B)/tunnelctl $(D)$(BINDIR)/tunnelctl
	$(INSTALL) -m 644 $(addprefix $(B)/,$(NGX_SO)) $(D)$(NGINX_MODULES_DIR)/
	echo 'load_module $(NGINX_MODULES_DIR)/ngx_http_tunnel_module.so;' \
	    >$(D)$(NGINX_MODULES_CONF)/mod-http-tunnel.conf
	$(if $(ADMIN_CONFIG),echo 'load_module $(NGINX_MODULES_DIR)/ngx_http_tunnel_admin_module.so;' \
	    >$(D)$(NGINX_MODULES_CONF)/mod-http-tunnel-admin.conf)
	$(INSTALL) -m 644 sql/*.sql $(D)$(DATADIR)/sql/
	$(INSTALL) -m 644 redis-scripts/*.lua $(D)$(DATADIR)/redis-scripts/
	$(INSTALL) -m 644 nginx.conf.example $(D)$(DATADIR)/examples/nginx.conf
	$(INSTALL) -m 644 dist/tunneld.conf $(D)$(DATADIR)/examples/tunneld.conf
	test -e $(D)$(SYSCONFDIR)/tunneld/tunneld.conf || \
	    $(INSTALL) -m 644 dist/tunneld.conf $(D)$(SYSCONFDIR)/tunneld/tunneld.conf
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    dist/tunneld.service.in >$(D)$(UNITDIR)/tunneld.service
	chmod 644 $(D)$(UNITDIR)/tunneld.service
	$(INSTALL) -m 644 dist/tunneld.sysusers $(D)$(SYSUSERSDIR)/tunneld.conf

uninstall:
	rm -f $(D)$(SBINDIR)/tunneld $(D)$(BINDIR)/tunnelctl \
	    $(addprefix $(D)$(NGINX_MODULES_DIR)/,$(NGX_SO)) \
	    $(D)$(NGINX_MODULES_CONF)/mod-http-tunnel.conf \
	    $(D)$(NGINX_MODULES_CONF)/mod-http-tunnel-admin.conf \
	    $(D)$(UNITDIR)/tunneld.service $(D)$(SYSUSERSDIR)/tunneld.conf
	rm -rf $(D)$(DATADIR)
	if cmp -s dist/tunneld.conf $(D)$(SYSCONFDIR)/tunneld/tunneld.conf; then \
	    rm -f $(D)$(SYSCONFDIR)/tunneld/tunneld.conf; \
	    rmdir $(D)$(SYSCONFDIR)/tunneld 2>/dev/null || true; \
	else \
	    echo "make uninstall: kept $(D)$(SYSCONFDIR)/tunneld/tunneld.conf" \
	         "(changed)"; \
	fi

# Debian packages (debian/, debhelper): tunneld and
# libnginx-mod-http-tunnel, built from a copy of the tree in build/deb so
# the build never cleans the working tree's build/.  The .deb files end
# up in build/deb/.
deb:
	rm -rf $(B)/deb && mkdir -p $(B)/deb/ngx-tunnel
	tar -c --exclude=./build --exclude=./.run --exclude=./.git \
	    --exclude=node_modules --exclude=./t/artifacts --exclude=./t/tmp . \
	    | tar -x -C $(B)/deb/ngx-tunnel
	cd $(B)/deb/ngx-tunnel && dpkg-buildpackage -b -us -uc \
	    >../build.log 2>&1 || { tail -40 ../build.log; exit 1; }
	@ls $(B)/deb/*.deb
