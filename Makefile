# make test            unit tests + every notebook (nbval), offline, fast mode, CPU
# make course          run every notebook headless, write results/*.json, rebuild the README table
#                      (teacher's tool, course/run.py: not in the student version)
# make course FAST=1 NB=A1   fast mode, only notebooks whose path contains A1
# make course OFFLINE=1      no internet: each notebook uses its offline dataset
# make check           environment report to paste into a bug report (students too)
# make matrix          the tests in fresh virtual environments: the version floor and the newest versions
# make gpu-check       unit tests + every notebook in fast mode on the GPU (DL4CV_DEVICE=cuda)
PYTHON ?= python3
FAST ?= 0
NB ?=
OFFLINE ?=
STAMP := .deps-installed

.PHONY: install test course check lint matrix gpu-check

install: $(STAMP)

# Reinstall only when the requirements change.
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m pip install -r requirements.txt
	@touch $@

test: $(STAMP)
	$(PYTHON) -m pytest

course: $(STAMP)
	@test -f course/run.py || { echo "make course: course/run.py is the teacher's tool, not in the student version; run a notebook with jupyter or pytest"; exit 2; }
	$(if $(OFFLINE),DL4CV_OFFLINE=$(OFFLINE)) $(PYTHON) -m course.run $(if $(filter 1,$(FAST)),--fast) $(NB)

matrix:
	$(PYTHON) .ci/matrix.py $(if $(IMPORTS),--imports $(IMPORTS))

gpu-check: $(STAMP)
	$(PYTHON) -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'make gpu-check: no CUDA device visible to torch')"
	DL4CV_TEST_DEVICE=cuda $(PYTHON) -m pytest

check: $(STAMP)
	$(PYTHON) -m helpers.environment_report

lint: $(STAMP)
	$(PYTHON) -m ruff check .
