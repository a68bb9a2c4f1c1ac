#!/usr/bin/env bash
# Install the app's dependencies into .venv and start it on http://127.0.0.1:8501
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q -r requirements.txt
exec .venv/bin/streamlit run app.py --server.address 127.0.0.1 --browser.gatherUsageStats false "$@"
