# tandem — build, test and demo. `make test` and `make demo` each install
# what they need first (Debian packages, Go modules), so either works alone
# on a fresh Debian 12 machine.

GO          ?= go
BIN         := $(CURDIR)/bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2

# Debian packages the tests and the lab use: real smbd and smbclient, iproute2
# and util-linux for namespaces, e2fsprogs for the data volume.
DEB_PACKAGES := samba smbclient iproute2 util-linux e2fsprogs iputils-ping \
                libxml2-utils procps fence-agents socat dnsmasq-base dbus-daemon

# In CI a lab test that cannot run fails instead of skipping.
ifneq ($(CI),)
export TANDEM_LAB_REQUIRED := 1
endif

.PHONY: all deps build test lint bench fuzz demo clean

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "deps: missing Debian packages:" $$missing "(run make as root to install them; lab tests skip without them)"; \
		else \
			echo "deps: installing" $$missing; \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		fi; \
	fi
	@$(GO) mod download

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

test: deps
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 25m ./...

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt would change:"; gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	@test -x $(BIN)/staticcheck || GOBIN=$(BIN) $(GO) install $(STATICCHECK)
	$(BIN)/staticcheck ./...

# Benchmarks print medians (the -ms metrics); lab benchmarks run a fixed
# number of rounds: lab build-up and tear-down, failover outages.
LAB_BENCH := ./testenv/ ./daemon/
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 7x -timeout 30m $(LAB_BENCH)
	$(GO) test -run '^$$' -bench . $$($(GO) list ./... | grep -v -e /testenv -e /daemon)

# Every fuzz test in the tree, each for FUZZTIME. Their seed corpora
# (testdata/fuzz) also run as ordinary tests in make test.
FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz: $$pkg $$f for $(FUZZTIME)"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

demo: deps build
	$(BIN)/tandem-lab demo

clean:
	rm -rf $(BIN)
