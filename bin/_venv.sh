# Sourced by bin/*: create .venv with Python 3.11 and install the project when it changed.
PYTHON_BIN="${PYTHON_BIN:-$(command -v python3.11 || command -v python3)}"
EXTRAS="${STUDIOX_EXTRAS:-}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON_BIN" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
stamp=".venv/.installed${EXTRAS:+-$EXTRAS}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q -e ".${EXTRAS:+[$EXTRAS]}"
  touch "$stamp"
fi
export PATH="$PWD/.venv/bin:$PATH"
