# CareQI: the two commands a new user needs are `make demo` and `make test`.
# Everything runs from a uv-managed virtualenv built from the committed uv.lock;
# all runtime state (warehouse, Airflow metadata DB, reports) lives under var/.

SHELL := /bin/bash
.DEFAULT_GOAL := help

UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := python3 -m uv
endif

export CAREQI_HOME ?= $(CURDIR)/var
DEMO_PATIENTS ?= 20000
DEMO_END ?= 2026-10
DEMO_FIRST ?= 2025-11
DEMO_SEED ?= 42
DEMO_QUARTER ?= 2026-Q3
DEMO_YEAR ?= 2026
BENCH_PATIENTS ?= 100000
# The CMS eCQMs need VSAC value sets, which CareQI does not ship: when the reference
# copies are beside the checkout (../shared), the demo uses them; otherwise those
# measures are listed as not computed.
ECQM_VALUESETS := $(wildcard $(CURDIR)/../shared/data/ecqm-qicore-2025/*/valuesets)
ifneq ($(ECQM_VALUESETS),)
export CAREQI_VALUESET_DIR ?= $(subst $(eval) ,:,$(ECQM_VALUESETS))
endif

.PHONY: help install demo test test-fast bench lint clean system-deps test-deps

# System libraries the Python wheels cannot carry: Pango for WeasyPrint (the PDF report);
# for the tests also Chromium (the report rendered headless) and poppler-utils (pdftoppm).
# Installed with apt-get when missing and we may (root); otherwise we say what is missing.
define ensure_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null \
	      || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing >/dev/null; }; \
	  elif command -v dpkg >/dev/null 2>&1; then \
	    echo "warning: missing system packages:$$missing (install them with apt-get)"; \
	  fi; \
	fi
endef

system-deps:
	$(call ensure_debs,libpango-1.0-0 libpangoft2-1.0-0)

test-deps: system-deps
	$(call ensure_debs,chromium poppler-utils)

help:
	@echo "make demo   - generate a synthetic hospital system and run the monthly DAG through Airflow"
	@echo "make test   - install and run the whole test suite (SQLite + PostgreSQL + Airflow)"
	@echo "make bench  - time every stage on $(BENCH_PATIENTS) synthetic patients"
	@echo "make lint   - ruff (lint and format) and mypy"
	@echo "make clean  - remove var/ (all generated data, the warehouse and reports)"

.venv/.careqi-installed: pyproject.toml uv.lock
	@python3 -m uv --version >/dev/null 2>&1 || command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen --compile-bytecode
	@touch $@

install: .venv/.careqi-installed system-deps

demo: export CAREQI_REPORT_LANGUAGES ?= en,zh
demo: install
	$(UV) run careqi generate --patients $(DEMO_PATIENTS) --months 12 --end $(DEMO_END) --seed $(DEMO_SEED)
	$(UV) run careqi backfill --from $(DEMO_FIRST) --to $$($(UV) run python -c "from pipelines.periods import shift; print(shift('$(DEMO_END)', -1))")
	$(UV) run scripts/airflow_dag_test.sh quality_monthly $(DEMO_END)
	$(UV) run scripts/airflow_dag_test.sh regulator_export $(DEMO_END)
	$(UV) run careqi export package --period $(DEMO_QUARTER)
	$(UV) run careqi export package --period $(DEMO_YEAR)
	for p in $(DEMO_END) $(DEMO_QUARTER) $(DEMO_YEAR); do $(UV) run careqi export verify $(CAREQI_HOME)/exports/$$p || exit 1; done
	$(UV) run careqi feedback days --month $(DEMO_END)
	$(UV) run scripts/airflow_dag_test.sh patient_feedback_daily $(DEMO_END)-28
	@echo
	@echo "Report:  $(CAREQI_HOME)/reports/$(DEMO_END)/index.html and index.pdf (Chinese: index.zh.html, index.zh.pdf)"
	@echo "Restricted case appendix: $(CAREQI_HOME)/restricted/$(DEMO_END)/"
	@echo "Exports: $(CAREQI_HOME)/exports/$(DEMO_END)/, $(DEMO_QUARTER)/ and $(DEMO_YEAR)/ (eCQMs over their measurement year)"
	@echo "Daily feedback run $(DEMO_END)-28: $(CAREQI_HOME)/staging/feedback/$(DEMO_END)-28/ and the sla_breaches table"

test: install test-deps
	$(UV) run pytest -n 2 --dist loadgroup

test-fast: install
	$(UV) run pytest -n 2 --dist loadgroup -m "not airflow"

bench: install
	$(UV) run careqi bench --patients $(BENCH_PATIENTS)

lint: install
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run mypy

clean:
	rm -rf var
