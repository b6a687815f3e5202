#!/usr/bin/env bash
# The whole miniature pipeline on generated data: Table 1, the three Appendix C figures, the report.
#   scripts/demo.sh [extra snakemake args]     (outputs under results/mini/)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
start=$(date +%s)
.venv/bin/snakemake --profile profiles/local "$@" --configfile workflow/configs/mini.yaml
.venv/bin/snakemake --profile profiles/local --configfile workflow/configs/mini.yaml \
  --report results/mini/report.html
echo "demo: done in $(($(date +%s) - start)) s"
echo "  results/mini/tables/table1.md, results/mini/figures/*.png, results/mini/report.html"
