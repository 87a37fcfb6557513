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

.PHONY: all deps run test unit bench clean

# the admin module (admin/) builds in the same nginx configure run
ADMIN_CONFIG := $(wildcard admin/config)
ADMIN_SRC    = $(wildcard admin/*.c admin/*.h admin/config)
ADMIN_SO     = $(if $(ADMIN_CONFIG),$(B)/ngx_http_tunnel_admin_module.so)

all: deps-check $(B)/tunneld $(B)/tunnelctl $(B)/ngx_http_tunnel_module.so \
     $(ADMIN_SO)

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
	        --with-cc-opt="$(WARN) -Wno-unused-parameter" >configure.log 2>&1 \
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
	prove $(PROVE_FLAGS) $(if $(T),$(T),-r t/)

bench: all
	tools/bench

clean:
	rm -rf $(B)
