# rdp.doctor — the two commands a newcomer needs:
#   make demo   start the lab fleet, diagnose -> drift report (check-mode remediate) -> remediate -> diagnose + fleet
#               report (reports/: JSON, JUnit XML, Markdown, HTML), stop the lab
#   make test   everything that checks the collection; ends with pytest's counts
# Each target installs what it needs by itself, idempotently.

SHELL := /bin/bash
.DEFAULT_GOAL := help

ROOT := $(CURDIR)
VENV := $(ROOT)/.venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rdp-doctor-installed
COLLECTIONS := $(ROOT)/.cache/collections
COLLECTION_LINK := $(COLLECTIONS)/ansible_collections/rdp/doctor
GET_PIP_CACHE := $(HOME)/.ansible/test/cache/get_pip_24_2.py
LAB_STATE := $(ROOT)/.lab
# Older ansible-core controllers the protocol, host_facts and diagnose tests also run on
# (tests/integration/test_ansible_versions.py); each pinned in tests/ansible-versions/<version>.txt.
OLDER_CONTROLLERS := 2.16 2.17 2.18
CONTROLLER_VENVS := $(ROOT)/.cache/venvs
CONTROLLER_STAMPS := $(foreach v,$(OLDER_CONTROLLERS),$(CONTROLLER_VENVS)/ansible-$(v)/.rdp-doctor-installed)
FLEET ?= tests/lab/fleets/default.yml
PYTEST_ARGS ?=

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export ANSIBLE_HOST_KEY_CHECKING := False
export ANSIBLE_NOCOLOR := 1
export PATH := $(VENV)/bin:$(PATH)

# The first Python 3.11-3.13 found (ansible-core 2.19 controller range; 3.11 is what CI uses).
PYTHON ?= $(shell for p in python3.11 python3.12 python3.13 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not ((3,11) <= sys.version_info[:2] <= (3,13)))' 2>/dev/null && { command -v $$p; break; }; done)

.PHONY: help setup venv controllers system-packages collection ansible-test-cache demo test bench \
	lab-start lab-stop lab-status build clean

help:
	@echo "make demo    start the lab fleet, diagnose, remediate (check mode, then for real), diagnose again, stop it"
	@echo "make test    unit + sanity + lint + end-to-end + molecule (prints pytest's counts)"
	@echo "make bench   benchmarks (probe, lab start-up), ratios against a baseline of the same run"
	@echo "make lab-start | lab-status | lab-stop   run the simulated Windows fleet by hand"
	@echo "make build   build the collection tarball into .cache/dist/"

setup: venv collection ansible-test-cache

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt constraints.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.11 (3.11-3.13) not found; install python3.11" >&2; exit 1; fi
	@echo "setup: virtual environment in .venv with $(PYTHON)"
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -r requirements-dev.txt
	@touch $(STAMP)

# One virtual environment per older ansible-core (the lab and every other test use .venv).
controllers: $(CONTROLLER_STAMPS)

$(CONTROLLER_VENVS)/ansible-%/.rdp-doctor-installed: tests/ansible-versions/%.txt
	@if [ -z "$(PYTHON)" ]; then echo "error: Python 3.11 (3.11-3.13) not found; install python3.11" >&2; exit 1; fi
	@echo "setup: ansible-core $* controller in .cache/venvs/ansible-$*"
	@[ -x $(CONTROLLER_VENVS)/ansible-$*/bin/python ] || $(PYTHON) -m venv $(CONTROLLER_VENVS)/ansible-$*
	@$(CONTROLLER_VENVS)/ansible-$*/bin/python -m pip install --quiet --disable-pip-version-check -r tests/ansible-versions/$*.txt
	@touch $@

system-packages:
	@tools/ensure-system-packages.sh

# The repository root is the collection; Ansible finds it through this symlink.
collection: $(COLLECTION_LINK)

$(COLLECTION_LINK):
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn ../../../.. $(COLLECTION_LINK)

# ansible-test bootstraps pip from a host this network cannot reach; it accepts a cached copy.
ansible-test-cache: $(GET_PIP_CACHE)

$(GET_PIP_CACHE): tools/get_pip_offline.py
	@mkdir -p $(dir $(GET_PIP_CACHE))
	@cp tools/get_pip_offline.py $(GET_PIP_CACHE)

test: setup system-packages controllers
	@$(PY) -m pytest tests $(PYTEST_ARGS)

demo: setup
	@$(PY) -m tests.lab stop --state-dir $(LAB_STATE) >/dev/null 2>&1 || true
	@$(PY) -m tests.lab start --fleet $(FLEET) --state-dir $(LAB_STATE)
	@status=0; inventory=$(LAB_STATE)/inventory.yml; \
	echo "== 1/4 diagnose: what is broken, and why"; \
	ansible-playbook -i $$inventory rdp.doctor.diagnose || status=$$?; \
	echo "== 2/4 drift report (remediate --check --diff): what would change, nothing is changed; reports/drift.*"; \
	ansible-playbook -i $$inventory rdp.doctor.drift_report --diff -e rdp_doctor_report_dir=$(ROOT)/reports -e rdp_doctor_report_basename=drift || true; \
	echo "== 3/4 remediate: fix, verify with a fresh read and the probe, roll back a host whose client view got worse"; \
	ansible-playbook -i $$inventory rdp.doctor.remediate -e rdp_doctor_serial=0 -e rdp_doctor_max_fail_percentage=100 || true; \
	echo "== the operator reboots the hosts whose change needs it (Schannel, CredSSP)"; \
	$(PY) -m tests.lab reboot --state-dir $(LAB_STATE) || true; \
	echo "== 4/4 diagnose again: only what a person must fix is left; the fleet report in reports/"; \
	ansible-playbook -i $$inventory rdp.doctor.diagnose -e rdp_doctor_report_dir=$(ROOT)/reports || status=$$?; \
	tools/screenshot-report.sh $(ROOT)/reports || echo "demo: no screenshot of the HTML report (needs chromium: bindep.txt)"; \
	ls -1 $(ROOT)/reports 2>/dev/null | sed 's|^|   reports/|'; \
	$(PY) -m tests.lab stop --state-dir $(LAB_STATE); \
	exit $$status

bench: setup system-packages
	@$(PY) -m tests.bench

lab-start: setup
	@$(PY) -m tests.lab start --fleet $(FLEET) --state-dir $(LAB_STATE)

lab-status: setup
	@$(PY) -m tests.lab status --state-dir $(LAB_STATE)

lab-stop: setup
	@$(PY) -m tests.lab stop --state-dir $(LAB_STATE)

build: setup
	@mkdir -p .cache/dist
	@ansible-galaxy collection build --force --output-path .cache/dist .

clean:
	@rm -rf .cache/dist tests/output .pytest_cache reports
