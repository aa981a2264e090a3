#!/bin/sh
# Creates the peers' own virtualenv (bench/.venv-peers, git-ignored): DBOS Transact, LangGraph
# with its PostgreSQL checkpointer, and Celery with psycopg for the bare chain. None of these is
# a StudioX dependency; they live apart so the product's environment stays as deployed.
# Usage, from anywhere: sh bench/peers/setup.sh   (PYTHON=python3.11 to choose the interpreter)
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
VENV="$HERE/../.venv-peers"
PYTHON=${PYTHON:-python3}

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q \
    'dbos>=1,<3' \
    'langgraph>=0.6,<2' \
    'langgraph-checkpoint-postgres>=2,<4' \
    'psycopg[binary,pool]>=3.2,<4' \
    'celery[redis]>=5.4,<6'
"$VENV/bin/python" -c 'import celery, dbos, langgraph, psycopg; print("peers ready:", celery.__version__, psycopg.__version__)'
"$VENV/bin/python" -m pip list 2>/dev/null | grep -i -E '^(dbos|langgraph|langgraph-checkpoint-postgres|celery|psycopg) '
