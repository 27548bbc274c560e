#!/usr/bin/env bash
# Fail if nbdev_clean, nbdev_export or the README generator change any tracked file:
# the notebooks are the source, and topk_sae/ and README.md must be what they generate.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${VENV:-.venv}/bin
before=$(git status --porcelain -- nbs topk_sae README.md)
$BIN/nbdev_clean
$BIN/nbdev_export
$BIN/python tools/make_readme.py
after=$(git status --porcelain -- nbs topk_sae README.md)
if [ "$before" != "$after" ]; then
  echo "nbdev_clean / nbdev_export / tools/make_readme.py changed files:"
  diff <(echo "$before") <(echo "$after") || true
  echo "run 'make export' and commit the result"
  exit 1
fi
echo "check_clean: notebooks, library and README agree"
