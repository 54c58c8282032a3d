#!/usr/bin/env bash
# Write a PNG next to each HTML fleet report, with headless Chromium (bindep.txt, profile test).
#   tools/screenshot-report.sh reports/            every *.html in the folder -> *.png next to it
#   tools/screenshot-report.sh reports/fleet.html  [out.png]
# make demo runs it after the report role wrote its files. The work is tests/report_browser.py.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
target="${1:?usage: $0 REPORT.html [OUT.png] | FOLDER}"
if [ -d "$target" ]; then
    shopt -s nullglob
    pages=("$target"/*.html)
    if [ ${#pages[@]} -eq 0 ]; then
        echo "screenshot-report: no .html report in $target" >&2
        exit 1
    fi
    for page in "${pages[@]}"; do
        (cd "$root" && "$python" -m tests.report_browser screenshot "$(realpath "$page")")
    done
else
    page="$(realpath "$target")"
    out=()
    [ $# -ge 2 ] && out=("$(realpath -m "$2")")
    cd "$root" && exec "$python" -m tests.report_browser screenshot "$page" "${out[@]}"
fi
