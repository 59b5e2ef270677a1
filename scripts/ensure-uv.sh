#!/usr/bin/env sh
# Print the path of a uv executable, installing uv from PyPI first if there is none.
set -eu
if command -v uv >/dev/null 2>&1; then command -v uv; exit 0; fi
if [ -x "$HOME/.local/bin/uv" ]; then echo "$HOME/.local/bin/uv"; exit 0; fi
PY=${PYTHON:-python3}
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  # Debian's python3 ships without pip; a throwaway venv has it (needs python3-venv).
  "$PY" -m venv "$HOME/.local/share/spendwatch-uv" >&2
  "$HOME/.local/share/spendwatch-uv/bin/pip" install --quiet uv >&2
  echo "$HOME/.local/share/spendwatch-uv/bin/uv"; exit 0
fi
"$PY" -m pip install --quiet --user uv >&2 2>/dev/null \
  || "$PY" -m pip install --quiet --user --break-system-packages uv >&2
"$PY" - <<'PY'
import os, shutil, sysconfig
for scheme in ("posix_user", "posix_prefix"):
    path = os.path.join(sysconfig.get_path("scripts", scheme), "uv")
    if os.path.exists(path):
        print(path)
        break
else:
    print(shutil.which("uv") or "uv")
PY
