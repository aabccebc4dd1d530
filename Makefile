# Two commands on a fresh machine: `make run` (full default workflow + report) and `make test`.
# Both create .venv on first use and install the pinned dependencies from constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORES ?= 2
CONFIG ?= config/config.yaml
SNAKEMAKE := $(BIN)/snakemake --workflow-profile workflow/profiles/default

.PHONY: setup run smoke test test-fast lint report bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[workflow,dev,nn]"
	touch $(STAMP)

setup: $(STAMP)

run: $(STAMP)
	$(BIN)/systpipe validate --data $(CONFIG) > /dev/null  # errors (file:line, key, column) to stderr, before any job
	$(SNAKEMAKE) --cores $(CORES) --configfile $(CONFIG)
	$(SNAKEMAKE) --cores $(CORES) --configfile $(CONFIG) --report results/report.zip

smoke: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) --configfile config/smoke.yaml

# One pytest-xdist worker per core: the Snakemake tests on one (in order), the unit tests on the
# other; a 2-core Snakemake run waits for the core it needs (tests/core_lock.py).
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n $(CORES)

# SLURM test (root, apt-get; 8.5 min on 2 cores): a one-node Slurm started by hand runs the smoke
# workflow through workflow/profiles/slurm; all jobs COMPLETED, table identical to a local run.
.PHONY: test-slurm
test-slurm: $(STAMP)
	tests/slurm/run.sh

# The default config in 1 and 4 partitions gives the same table to the byte (docs/scaling.md;
# about 6 min on 2 cores, run by .ci/run).
.PHONY: test-partitions
test-partitions: $(STAMP)
	SYSTPIPE_TEST_DEFAULT_PARTITIONS=1 OMP_NUM_THREADS=1 $(BIN)/python -m pytest tests/workflow/test_default_partitions.py

test-fast: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow

report: $(STAMP)
	$(SNAKEMAKE) --cores $(CORES) --configfile $(CONFIG) --report results/report.zip

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf results/* .snakemake
	touch results/.gitkeep

# After a hard kill the next run refuses to start until Snakemake's lock is removed.
.PHONY: unlock
unlock: $(STAMP)
	$(SNAKEMAKE) --unlock --configfile $(CONFIG)
