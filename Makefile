# postie - see README.md. "make", "make test", "make demo", "make bench",
# "make fuzz [FUZZ_TIME=SECONDS]",
# "make install PREFIX=/usr/local [DESTDIR=...]".

CC	?= cc
CFLAGS	?= -O2 -g
WARN	 = -std=c17 -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	   -Wmissing-prototypes -Wstrict-prototypes -Wpointer-arith
CPPFLAGS += -D_GNU_SOURCE -Iinclude
PREFIX	?= /usr/local
LIBDIR	?= $(PREFIX)/lib
BUILD	?= build
PYTHON	?= /usr/bin/python3

# SAN=1: AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/.
ifeq ($(SAN),1)
BUILD	 = build-san
CFLAGS	+= -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=undefined
LDFLAGS	+= -fsanitize=address,undefined
endif

# The send and receive network stack (libesmtp, OpenSSL, libssh2) is kept
# out of the sendmail path: loading those libraries costs more than the
# whole spool (see README, "Architecture").
NET_PKGS  = libesmtp-1.0 openssl libssh2
NET_CFLAGS = $(shell pkg-config --cflags $(NET_PKGS) 2>/dev/null)
NET_LIBS   = $(shell pkg-config --libs $(NET_PKGS) 2>/dev/null)
CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka)
CMOCKA_LIBS   = $(shell pkg-config --libs cmocka)

CORE	= err util trust alias config message input crash safefile queue \
	  reach spool cli log textout mailq qctl smtpd maildir netload handoff \
	  commands mda
CORE_OBJS = $(CORE:%=$(BUILD)/obj/%.o)
# The network module: loaded by deliver (and fetch) only.
NET	= tls socks dial session auth reply pump sshcfg sshroute sshconn knownmark stopsig \
	  sshjump tunnel sftp sftpchan fetch fetchget fetchsync fetchprog fetchmda fetchclaims fetchkeep \
	  smtp local bounce notify dirsync deliver netmod confine runner mailboxes \
	  fetchhooks
NET_OBJS = $(NET:%=$(BUILD)/obj/%.o)
UNIT	= $(basename $(notdir $(wildcard tests/unit/test_*.c)))
UNIT_BINS = $(UNIT:%=$(BUILD)/tests/%)
HEADERS	= $(wildcard include/*.h)

all: $(BUILD)/postie

$(BUILD)/obj/%.o: src/%.c $(HEADERS) | $(BUILD)/obj
	$(CC) $(CPPFLAGS) $(WARN) $(CFLAGS) -fPIC $(NET_CFLAGS) -c -o $@ $<

$(BUILD)/libpostie.a: $(CORE_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/libpostienet.a: $(NET_OBJS)
	rm -f $@
	ar rcs $@ $^

# Where the module is looked for when the kernel will not run it from
# memory (vm.memfd_noexec; see src/netload.c).
$(BUILD)/obj/netload.o: CPPFLAGS += \
	-DNETMOD_INSTALLED='"$(LIBDIR)/postie/postie-net.so"'

# The module's undefined core symbols resolve from the executable, which
# exports those and nothing else: the dynamic list is what the module
# needs from the core, plus any symbol of the core a library of the
# module must resolve to (none today).
NET_INTERPOSE =
$(BUILD)/postie-net.so: $(NET_OBJS)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(NET_LIBS) -lpthread

$(BUILD)/netmod.dynlist: $(BUILD)/postie-net.so $(BUILD)/obj/main.o $(CORE_OBJS)
	{ echo '{'; \
	  { nm -D --undefined-only $< | awk '{ print $$2 }' | sort -u; \
	    nm --defined-only --extern-only $(BUILD)/obj/main.o $(CORE_OBJS) | \
	    awk 'NF == 3 { print $$3 }' | sort -u; } | sort | uniq -d | \
	    sed 's/.*/\t&;/'; \
	  for s in $(NET_INTERPOSE); do printf '\t%s;\n' $$s; done; \
	  echo '};'; } > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/netblob.o: src/netblob.S $(BUILD)/postie-net.so
	$(CC) -c -DNETMOD_PATH='"$(BUILD)/postie-net.so"' -o $@ $<

$(BUILD)/postie: $(BUILD)/obj/main.o $(CORE_OBJS) $(BUILD)/obj/netblob.o \
    $(BUILD)/netmod.dynlist
	$(CC) $(LDFLAGS) -Wl,--dynamic-list=$(BUILD)/netmod.dynlist -o $@ \
	    $(filter %.o,$^) -ldl

$(BUILD)/tests/%: tests/unit/%.c tests/unit/testutil.h $(BUILD)/libpostie.a $(BUILD)/libpostienet.a | $(BUILD)/tests
	$(CC) $(CPPFLAGS) -Itests/unit $(WARN) -Wno-missing-prototypes \
	    $(CFLAGS) $(NET_CFLAGS) $(CMOCKA_CFLAGS) -o $@ $< \
	    $(BUILD)/libpostienet.a $(BUILD)/libpostie.a \
	    $(LDFLAGS) $(NET_LIBS) -lpthread $(CMOCKA_LIBS)

$(BUILD)/obj $(BUILD)/tests:
	mkdir -p $@

unit: $(UNIT_BINS)

# Every test: cmocka unit tests, then the integration suite against the
# real binary; ends with "N passed, N failed".
test: deps all unit
	POSTIE_SANITIZED=$(SAN) tests/run.sh $(BUILD) $(PYTHON)

# The unit tests under valgrind: no leaks, no invalid accesses.
valgrind: unit
	VALGRIND=1 tests/run.sh $(BUILD) $(PYTHON) unit

deps:
	bash tests/deps.sh

demo: deps all
	tests/demo.sh $(BUILD)/postie

bench: all
	tests/bench/enqueue.sh $(BUILD)/postie
	tests/bench/flush.sh $(BUILD)/postie
	$(PYTHON) tests/bench/fetch.py $(BUILD)/postie
	$(PYTHON) tests/bench/send.py $(BUILD)/postie

# make fuzz: the libFuzzer targets (tests/fuzz/fuzz_*.c, one per parser),
# built by clang with ASan+UBSan and coverage in build-fuzz/, then each run
# FUZZ_TIME seconds from its seed corpus (tests/fuzz/run.sh).
FUZZ_TIME ?= 10
FUZZ_SAN  = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    -fno-omit-frame-pointer
FUZZERS	= $(basename $(notdir $(wildcard tests/fuzz/fuzz_*.c)))

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang \
	    CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	    LDFLAGS="$(FUZZ_SAN)" fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_TIME) $(FUZZERS)

fuzz-build: $(FUZZERS:%=$(BUILD)/fuzz/%)

$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz.h $(BUILD)/libpostie.a $(BUILD)/libpostienet.a | $(BUILD)/fuzz
	$(CC) $(CPPFLAGS) -Itests/fuzz $(WARN) $(CFLAGS) -fsanitize=fuzzer \
	    $(NET_CFLAGS) -o $@ $< $(BUILD)/libpostienet.a \
	    $(BUILD)/libpostie.a $(LDFLAGS) $(NET_LIBS) -lpthread

$(BUILD)/fuzz:
	mkdir -p $@

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 \
	    $(DESTDIR)$(PREFIX)/share/man/man5
	install -m 755 $(BUILD)/postie $(DESTDIR)$(PREFIX)/bin/postie
	install -d $(DESTDIR)$(LIBDIR)/postie
	install -m 644 $(BUILD)/postie-net.so $(DESTDIR)$(LIBDIR)/postie/
	for c in sendmail mailq deliver fetch newaliases; do \
	    ln -sf postie $(DESTDIR)$(PREFIX)/bin/$$c; done
	install -m 644 man/postie.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 644 man/postie.conf.5 $(DESTDIR)$(PREFIX)/share/man/man5/

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/fuzz/*.[ch]

clean:
	rm -rf build build-san build-fuzz

.PHONY: all unit test valgrind deps demo bench fuzz fuzz-build install \
	format clean
