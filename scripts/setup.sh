# Sourced by scripts/test.sh and scripts/demo.sh: installs what hspkcs11 needs on a
# fresh Debian 12 (system packages, a venv, the package itself). Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

# need -> Debian package that provides it
declare -A PROVIDES=(
  [softhsm2-util]=softhsm2 [pkcs11-tool]=opensc [gcc]=gcc [openssl]=openssl [p11tool]=gnutls-bin
  [ssh-keygen]=openssh-client [p11-kit]=p11-kit [javac]=default-jdk-headless [valgrind]=valgrind
)
missing=()
for tool in "${!PROVIDES[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PROVIDES[$tool]}")
done
[ -f /usr/include/openssl/evp.h ] || missing+=(libssl-dev)
# OpenSSL's pkcs11 engine (libp11), for the client matrix (tests/clients/test_openssl_engine.py)
[ -f "/usr/lib/$(uname -m)-linux-gnu/engines-3/pkcs11.so" ] || missing+=(libengine-pkcs11-openssl)
command -v "$PYTHON" >/dev/null 2>&1 || missing+=(python3)
if command -v "$PYTHON" >/dev/null 2>&1; then
  inc=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  [ -f "$inc/Python.h" ] || missing+=(python3-dev)
  "$PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  echo "setup: hspkcs11 needs Python 3.11 or newer ($PYTHON is $("$PYTHON" --version))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv

# Reinstall only when the build inputs changed (the C build takes a while).
stamp=.venv/.hspkcs11-build
digest=$(cat pyproject.toml setup.py csrc/*.c csrc/*.h csrc/*.py hspkcs11/consts.py | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ] || [ ! -f hspkcs11/libhspkcs11.so ]; then
  echo "setup: building hspkcs11 into .venv" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[test]'
  echo "$digest" > "$stamp"
fi

# python-pkcs11's own test suite, written against SoftHSM2, run by tests/test_external_suites.py.
# Fetched from PyPI as the sdist of the installed version; never committed.
ver=$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("python-pkcs11"))')
ext=.venv/external/python-pkcs11-$ver
if [ ! -f "$ext/tests/__init__.py" ]; then
  echo "setup: fetching python-pkcs11 $ver's test suite" >&2
  tmp=$(mktemp -d)
  .venv/bin/python -m pip download -q --no-deps --no-binary :all: "python-pkcs11==$ver" -d "$tmp"
  mkdir -p "$ext"
  tar xzf "$tmp"/python_pkcs11-*.tar.gz -C "$ext" --strip-components=1 --wildcards '*/tests/*'
  rm -rf "$tmp"
fi
