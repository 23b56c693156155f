# Two commands: `make run` starts the app, `make test` runs the whole suite. Both set everything up.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
PORT   ?= 8501

.PHONY: run test lint setup browser bench report warm classroom clean

$(STAMP): requirements.txt
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# The browser test drives Debian's Chromium; install it when missing (needs root, as on CI).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	      || echo "warning: could not install chromium; the browser test will be skipped"; \
	  else echo "note: chromium not installed (not root); the browser test will be skipped"; fi; }

run: setup
	$(VENV)/bin/streamlit run app.py --server.port $(PORT) --server.headless true

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: setup browser lint
	$(PY) -m pytest

bench: setup
	$(PY) -m xtmr_core bench

report: setup
	$(PY) -m xtmr_core report

# Fill the results store with the Fault lab's default points (lenet5, fp32 and int8, every BER stop).
warm: setup
	$(PY) -m xtmr_core warm

# 30 headless browser sessions move the Fault lab's BER slider on one server (loopback; prints step latencies).
classroom: setup browser
	$(PY) tests/classroom.py --sessions 30 --steps 10 --store $${XTMR_STORE:-$$HOME/.cache/xtmr/results.sqlite}

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
