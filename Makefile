# credbridge — every set-up step lives here, so a fresh Debian machine with Go
# needs only `make run` and `make test`.
GO      ?= go
BIN     := bin/credbridge
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The one image tag: deploy/compose.yaml and deploy/k8s/*/kustomization.yaml pull it.
IMAGE   ?= credbridge:dev
# apt-get as root (CI, containers) or through sudo (a developer's machine).
APT     := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)
FUZZTIME ?= 15s

.PHONY: build run test deps lint bench bench-deps latency coldstart floor floor-profile fuzz soak image clean migrate-bench
SOAK_DURATION ?= 2m

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/credbridge

## run: build and start the demo (reference backend, identity service, bridge)
run: build
	./$(BIN) demo

## deps: what the tests need beyond Go — a real redis-server,
## python-openstackclient for the compat tests (`openstack credential ...`), and
## a real Keystone on MariaDB under uwsgi (internal/testing/keystone)
deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	command -v curl >/dev/null 2>&1 || missing="$$missing curl"; \
	command -v openstack >/dev/null 2>&1 || missing="$$missing python3-openstackclient"; \
	command -v keystone-manage >/dev/null 2>&1 || missing="$$missing keystone"; \
	[ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server"; \
	[ -d /usr/lib/python3/dist-packages/pymysql ] || missing="$$missing python3-pymysql"; \
	[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || missing="$$missing uwsgi-plugin-python3"; \
	[ -z "$$missing" ] || { \
	  echo "installing$$missing (tests start redis-server, MariaDB and Keystone on free loopback ports and run the openstack CLI)"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq $$missing >/dev/null; }

## test: install what is missing, then vet and run every test with the race detector;
## compat/ (its own module) drives the bridge with gophercloud and Huawei's Go SDK;
## deploy/ (its own module, so the product lists no Kubernetes module) checks the
## Dockerfile, compose file and kustomizations
test: deps
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...
	cd compat && $(GO) vet ./... && $(GO) test -race -count=1 ./...
	cd deploy && $(GO) vet ./... && $(GO) test -race -count=1 ./...

## lint: gofmt, go vet and staticcheck (pinned) over the three modules and the soak build
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint:
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./... && $(GO) vet -tags soak ./app
	$(GO) run $(STATICCHECK) ./... && $(GO) run $(STATICCHECK) -tags soak ./app
	cd compat && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...
	cd deploy && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

## bench-deps: nginx with Lua and wrk for the side-by-side run
bench-deps:
	@command -v nginx >/dev/null 2>&1 && command -v wrk >/dev/null 2>&1 && [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || { \
	  echo "installing nginx, libnginx-mod-http-lua, lua-cjson, wrk"; \
	  $(APT) update -qq && DEBIAN_FRONTEND=noninteractive $(APT) install -y -qq nginx libnginx-mod-http-lua lua-cjson wrk >/dev/null; }

## bench: Go benchmarks, then the side-by-side run against nginx, nginx+Lua and httputil,
## ending with the ratios (bench/ratios.awk)
bench: build bench-deps
	$(GO) test -run '^$$' -bench . -benchmem ./translate ./policy ./proxy ./app
	bash -o pipefail -c '../shared/bench/run.sh ./$(BIN) | awk -f bench/ratios.awk'

## latency: fixed-rate p50/p99/p99.9 for direct, nginx-lua and credbridge
latency: build bench-deps
	bench/latency.sh ./$(BIN) 1000,2500,5000 5s

## coldstart: a fresh bridge hit at once with 5,000 req/s open loop, three runs:
## p50/p99/p99.9 over the first 5 s, peak RSS and the verdict (p99 < 25 ms, VmHWM < 64 MiB)
coldstart: build bench-deps
	bench/coldstart.sh ./$(BIN) 3

## floor: the ceiling — Go's HTTP servers doing none of the bridge's work
## (bench/cmd/credbridge-floor) next to the nginx+Lua peer and credbridge, in one run
floor: build bench-deps
	bench/floor.sh ./$(BIN)

## floor-profile: where credbridge's difference to floor-nethttp goes — both CPU-profiled
## one after the other under floor's load, split by package per request (PROCS=N, default 1)
floor-profile: build bench-deps
	bench/floorprof.sh ./$(BIN)

## migrate-bench: migrate sync and verify of 10,000 keys over 5,000 users between
## reference servers in processes of their own (wall time and peak RSS of each command)
migrate-bench:
	$(GO) test -run '^$$' -bench MigrateSync10k -benchtime 1x -count 3 ./app

## fuzz: every fuzz target for FUZZTIME each
fuzz:
	@for pkg in ./translate ./policy ./proxy ./config ./audit; do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

## soak: mixed traffic of all dialects while Redis and the upstream fail (loopback only)
soak: deps
	SOAK_DURATION=$(SOAK_DURATION) $(GO) test -tags soak -run '^TestSoak$$' -count=1 -v -timeout 40m ./app

## image: the container image, as $(IMAGE), with VERSION and COMMIT baked in
image:
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMAGE) .

clean:
	rm -rf bin
