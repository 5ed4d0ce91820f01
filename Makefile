# aigw: one binary. `make test` is the test command CI runs (.ci/run).
GO ?= go
export GOTOOLCHAIN ?= local

.PHONY: build test test-race vet fmt bench fuzz run

build:
	$(GO) build -o bin/aigw ./cmd/aigw

run: build
	./bin/aigw serve

# Unit, integration (real PostgreSQL and NATS JetStream) and end-to-end tests,
# with the race detector on the packages that run concurrent code.
test: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) test -count=1 -timeout 15m ./...
	$(GO) test -count=1 -race -timeout 15m ./ledger/sequencer/... ./ledger/jetstream/... ./ledger/readapi/... ./ledger/sqlite/... ./ledger/postgres/... ./verify/... ./evidence/... ./gateway/... ./loadgen/...
	$(GO) test -count=1 -race -run 'Sequence|SequencerProcess' ./cmd/aigw

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# Benchmarks quoted in README.md (Performance).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2s ./ledger/... ./verify/... ./gateway/...
	$(GO) test -run '^$$' -bench Export10M -benchtime 3x -timeout 60m ./evidence

# Short fuzzing pass over every parser of outside bytes.
fuzz:
	for f in FuzzCanonicalize FuzzParseEntry FuzzFastEntry FuzzParseTilePath FuzzParseCheckpoint; do \
		$(GO) test ./ledger -run '^$$' -fuzz "^$$f$$" -fuzztime 20s || exit 1; done
	$(GO) test ./verify -run '^$$' -fuzz '^FuzzProof$$' -fuzztime 20s
	$(GO) test ./verify -run '^$$' -fuzz '^FuzzPackageManifest$$' -fuzztime 20s
	$(GO) test ./evidence -run '^$$' -fuzz '^FuzzParseFields$$' -fuzztime 20s
	$(GO) test ./gateway -run '^$$' -fuzz '^FuzzSSEDecoder$$' -fuzztime 20s
	for f in FuzzDecodeChatChunk FuzzDecodeChatResponse FuzzDecodeChatValue; do \
		$(GO) test ./gateway -run '^$$' -fuzz "^$$f$$" -fuzztime 20s || exit 1; done
	for f in FuzzChatRequest FuzzEmbeddingsRequest; do \
		$(GO) test ./gateway/httpapi -run '^$$' -fuzz "^$$f$$" -fuzztime 20s || exit 1; done
	$(GO) test ./gateway/guard/textnorm -run '^$$' -fuzz '^FuzzShared$$' -fuzztime 20s
	$(GO) test ./gateway/guard/engine -run '^$$' -fuzz '^FuzzSharedScans$$' -fuzztime 20s
	$(GO) test ./gateway/internal/jsonscan -run '^$$' -fuzz '^FuzzValid$$' -fuzztime 20s
	$(GO) test ./gateway/internal/h1 -run '^$$' -fuzz '^FuzzResponse$$' -fuzztime 20s
