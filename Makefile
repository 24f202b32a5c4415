PREFIX ?= /usr/local
DESTDIR ?=
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/oomguard/oomguard/internal/cli.Version=$(VERSION)

.PHONY: build test vm-test install deb clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/oomguard ./cmd/oomguard

test:
	bash scripts/test.sh

# The qemu VM suite alone (cgroup v2, system-wide scenarios, fault
# injection); vm/setup.sh installs qemu and the guest kernel.
vm-test:
	bash vm/setup.sh
	$(GO) test -count=1 -timeout 30m -v ./vm/

install: build
	install -D -m 0755 bin/oomguard $(DESTDIR)$(PREFIX)/sbin/oomguard
	@if [ -f etc/oomguard.toml ] && [ ! -f $(DESTDIR)/etc/oomguard/oomguard.toml ]; then \
		install -D -m 0644 etc/oomguard.toml $(DESTDIR)/etc/oomguard/oomguard.toml; fi
	install -d $(DESTDIR)/lib/systemd/system
	sed 's|/usr/sbin/oomguard|$(PREFIX)/sbin/oomguard|g' etc/oomguard.service > $(DESTDIR)/lib/systemd/system/oomguard.service
	install -D -m 0644 man/man8/oomguard.8 $(DESTDIR)$(PREFIX)/share/man/man8/oomguard.8
	install -D -m 0644 man/man5/oomguard.toml.5 $(DESTDIR)$(PREFIX)/share/man/man5/oomguard.toml.5
	install -D -m 0644 completions/oomguard.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/oomguard
	install -D -m 0644 completions/_oomguard $(DESTDIR)$(PREFIX)/share/zsh/vendor-completions/_oomguard
	install -D -m 0644 packaging/dbus/org.oomguard1.conf $(DESTDIR)/usr/share/dbus-1/system.d/org.oomguard1.conf

deb:
	bash packaging/build-deb.sh

clean:
	rm -rf bin
