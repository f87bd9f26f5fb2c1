# Set-up and entry points. Every target installs what it needs first, so a
# fresh Debian/Ubuntu machine needs only `make demo` or `make test`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages: Icarus Verilog, a C++ toolchain and LZ4 headers for
# Verilator models with FST output, ccache for Verilator rebuilds, GTKWave.
APT_PACKAGES := iverilog g++ make ccache liblz4-dev gtkwave python3-venv python3-dev
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
JOBS ?= 2

.PHONY: all setup system-deps demo test test-fast bench verilog docs clean

all: test

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

$(STAMP): pyproject.toml requirements.lock | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	touch $@

setup: system-deps $(STAMP)

demo: setup
	$(BIN)/amc solve --simulator icarus
	$(BIN)/amc solve --simulator verilator

test: setup
	$(BIN)/pytest -n $(JOBS) --dist loadgroup

test-fast: setup
	$(BIN)/pytest -n $(JOBS) --dist loadgroup -m "not cocotb"

bench: setup
	$(BIN)/python -m benchmarks.run
	$(BIN)/python -m benchmarks.train_bench

verilog: setup
	$(BIN)/amc verilog --output build/verilog

clean:
	rm -rf build out .pytest_cache

docs: setup
	$(BIN)/python -c "from amc.model.switch_matrix import mode_table_markdown as m; open('docs/mode_table.md','w').write(m())"
	$(BIN)/python -c "from amc.rtl.regmap import RegisterMap; from amc.rtl.params import ControllerParams as P; open('docs/registers.md','w').write(RegisterMap(P()).markdown())"
