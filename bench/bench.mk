# Builds the benchmark's C tools into build/bench/bin/ (run by tools/bench:
# `make -f bench/bench.mk`).  Kept out of the top-level Makefile so the
# product build never depends on them.

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -Wall -Wextra -Werror
BIN      = build/bench/bin

all: $(BIN)/tnl-loadgen $(BIN)/tnl-httpc $(BIN)/tnl-memcpy-align

$(BIN)/tnl-loadgen: bench/loadgen/tnl_loadgen.c
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -o $@ $< \
	    $$(pkg-config --cflags --libs libssh)

$(BIN)/tnl-httpc: bench/loadgen/tnl_httpc.c
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -o $@ $<

$(BIN)/tnl-memcpy-align: bench/memcpy/tnl_memcpy_align.c
	@mkdir -p $(BIN)
	$(CC) $(CFLAGS) $(WARN) -std=gnu11 -D_GNU_SOURCE -o $@ $<

.PHONY: all
