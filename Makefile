# Targets that need the PostgreSQL and Redis servers depend on `services`,
# which starts (or, as root, installs) them when they are not running.

GO ?= go
# Extra flags for go test, e.g. make test GOTESTFLAGS='-run TestPool -v'
GOTESTFLAGS ?=
# go test's own limit per package only catches a hang: the driver's package
# takes about 3.5 minutes on a quiet 2-core machine and over 10 (go test's
# default) on one three other suites share, and the tests' own hang
# deadlines are half of what is left of it (hangAfter).
GOTESTTIMEOUT ?= 30m

.DEFAULT_GOAL := help
.PHONY: help services test test-short bench bench-migrate bench-fit bench-fleet bench-shared fuzz fmt-check lint vet-ctx run-example run-example-schemas mutate readme

help: ## List the targets
	@echo 'Targets:'
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z_-]+:.*## / { printf "  %-20s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

services: ## Ensure PostgreSQL and Redis are running, pgbouncer and chromium installed (scripts/services.sh)
	@bash scripts/services.sh

test: services ## go vet, then go test -race (extra flags: GOTESTFLAGS)
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout $(GOTESTTIMEOUT) $(GOTESTFLAGS) ./...

test-short: services ## go test without the race detector (quicker)
	$(GO) test -count=1 -timeout $(GOTESTTIMEOUT) $(GOTESTFLAGS) ./...

bench: services ## Run the routing benchmark (internal/cmd/bench), on a private server
	$(GO) run ./internal/cmd/bench

bench-migrate: services ## Measure migrating 200 tenants x 5 migrations
	$(GO) run ./internal/cmd/bench -suite migrate

# Mutations to run: a regexp on their names (scripts/mutations/NAME.mut),
# e.g. make mutate MUTATE='^store-'; extra go test flags in MUTATE_FLAGS.
# scripts/mutate.sh lists more settings (MUTATE_TIMEOUT, MUTATE_LOGS, ...).
MUTATE ?=
MUTATE_FLAGS ?=
mutate: services ## Break critical lines one at a time (scripts/mutations), report any the tests miss (MUTATE=regexp, MUTATE_FLAGS)
	MUTATE='$(MUTATE)' MUTATE_FLAGS='$(MUTATE_FLAGS)' GO='$(GO)' bash scripts/mutate.sh

# Extra flags for the fit suite, e.g. make bench-fit BENCHFLAGS="-duration 3s -fit-tenants 40"
BENCHFLAGS ?=
bench-fit: services ## Budgets that fit the demand (issue 11): this driver and 29be03b's, side by side
	bash internal/cmd/bench/fit-side-by-side.sh $(BENCHFLAGS)

bench-fleet: services ## Processes sharing a fleet budget (issue 18): one hot, the others idle, against a static budget/N split; a crashed process's slots
	$(GO) run ./internal/cmd/bench -suite fleet $(BENCHFLAGS)

bench-shared: services ## Tenants that share a database (issue 13): schema and RLS tenants vs plain pgx, SET search_path, database-per-tenant
	GOMAXPROCS=2 $(GO) run ./internal/cmd/bench -suite shared $(BENCHFLAGS)

# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can
# report its own stop deadline as a failure ("context deadline exceeded", no
# crasher written; golang/go#75804, fixed in Go 1.27). A count has no deadline.
FUZZTIME ?= 100000x
fuzz: ## Run each fuzz target briefly (FUZZTIME executions, default 100000x): request decoding, ids, URLs, middleware
	$(GO) test -run '^$$' -fuzz '^FuzzCreateTenant$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzUpdateTenant$$' -fuzztime $(FUZZTIME) ./api
	$(GO) test -run '^$$' -fuzz '^FuzzValidateID$$' -fuzztime $(FUZZTIME) ./store
	$(GO) test -run '^$$' -fuzz '^FuzzValidateURL$$' -fuzztime $(FUZZTIME) ./store
	$(GO) test -run '^$$' -fuzz '^FuzzRedactURL$$' -fuzztime $(FUZZTIME) ./internal/pgurl
	$(GO) test -run '^$$' -fuzz '^FuzzParseFailure$$' -fuzztime $(FUZZTIME) ./internal/pgurl
	$(GO) test -run '^$$' -fuzz '^FuzzRedactText$$' -fuzztime $(FUZZTIME) ./internal/pgurl
	$(GO) test -run '^$$' -fuzz '^FuzzMiddlewareHeader$$' -fuzztime $(FUZZTIME) ./tenantctx

fmt-check: ## Fail if gofmt would change any file
	@out=$$(gofmt -l .) || exit 1; \
	if [ -n "$$out" ]; then \
		echo 'gofmt -l found unformatted files (run gofmt -w on them):'; \
		echo "$$out"; \
		exit 1; \
	fi

# staticcheck is run at a pinned version with `go run pkg@version`, not listed
# in go.mod: nothing of it enters the module's dependency graph, so users of the
# driver neither download nor build it. Change the version here only.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
lint: vet-ctx ## vet-ctx, then staticcheck ./... (pinned version, fetched by go run; no server needed)
	$(GO) run $(STATICCHECK) ./...

# tenantsql-vet on the module's own code. Left out: test files (-test=false),
# which call without a context on purpose to check that the driver fails
# closed, or on plain pgx connections that tenantsql does not route; and
# examples/porting/before, the porting guide's code before the port.
vet-ctx: ## tenantsql-vet (database/sql calls without a context) on non-test code, but examples/porting/before
	$(GO) run ./cmd/tenantsql-vet -test=false $$($(GO) list ./... | grep -v '/examples/porting/before$$')

# The run-example targets build the example and exec it, rather than
# `go run` it: the recipe's shell becomes the program, so Ctrl-C reaches it
# alone among make's children, it shuts down gracefully and exits 0, and
# make has no failed command to report (with go run in between, it did:
# make: *** Error 1).
run-example: services ## Run the tutorial app (examples/hospital) on the file store at :8000 (Ctrl-C stops it)
	@mkdir -p .run
	@test -f .run/tenant_config.json || cp examples/hospital/tenant_config.json .run/tenant_config.json
	$(GO) build -o .run/hospital ./examples/hospital
	cd .run && TENANTSQL_ADMIN_TOKEN=$${TENANTSQL_ADMIN_TOKEN:-dev-token} exec ./hospital

run-example-schemas: services ## Run the tutorial app at :8000 with its tenants as schemas of one database, hospital_shared
	@mkdir -p .run
	@test -f .run/tenant_config_schemas.json || cp examples/hospital/tenant_config_schemas.json .run/tenant_config_schemas.json
	$(GO) build -o .run/hospital ./examples/hospital
	cd .run && TENANTSQL_ADMIN_TOKEN=$${TENANTSQL_ADMIN_TOKEN:-dev-token} exec ./hospital --store file:tenant_config_schemas.json

# README.md's Go blocks are copies of regions of tests (internal/readme):
# this rewrites them from the sources; `make test` fails while they differ.
readme: ## Copy the README's Go snippets from their sources (internal/readme, // snippet:NAME regions)
	$(GO) test -count=1 -run '^TestReadmeBlocks$$' ./internal/readme -update
