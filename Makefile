# The two entry points of the README. Each sets up .venv itself and reuses it
# while the dependency set (pyproject.toml) is unchanged.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PY := $(VENV)/bin/python

.PHONY: demo test test-slow bench clean-venv

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/echossl demo --out outputs/demo

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile

test-slow: $(STAMP)
	$(PY) -m pytest -m slow

bench: $(STAMP)
	$(VENV)/bin/echossl bench --out outputs/bench.json

clean-venv:
	rm -rf $(VENV)
