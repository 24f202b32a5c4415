PREFIX ?= /usr/local
DESTDIR ?=
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/oomguard/oomguard/internal/cli.Version=$(VERSION)

.PHONY: build test install clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/oomguard ./cmd/oomguard

test:
	bash scripts/test.sh

install: build
	install -D -m 0755 bin/oomguard $(DESTDIR)$(PREFIX)/sbin/oomguard
	@if [ -f etc/oomguard.toml ] && [ ! -f $(DESTDIR)/etc/oomguard/oomguard.toml ]; then \
		install -D -m 0644 etc/oomguard.toml $(DESTDIR)/etc/oomguard/oomguard.toml; fi
	@if [ -f etc/oomguard.service ]; then \
		install -D -m 0644 etc/oomguard.service $(DESTDIR)/lib/systemd/system/oomguard.service; fi

clean:
	rm -rf bin
