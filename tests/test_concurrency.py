"""Several processes on one token (hspkcs11 only): SQLite WAL, nothing lost."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import make_region, util
from regionkit import start_together

WRITER = """
import sys, pkcs11, hspkcs11
from pkcs11 import Attribute as A, KeyType
lib = pkcs11.lib(str(hspkcs11.module_path()))
tag, count = sys.argv[1], int(sys.argv[2])
with lib.get_token(token_label="shared").open(user_pin="1234", rw=True) as s:
    sys.stdout.write("ready\\n"); sys.stdout.flush()
    sys.stdin.readline()                       # start together
    for i in range(count):
        s.generate_key(KeyType.AES, 128, store=True, label=f"{tag}-{i}")
    print(len(list(s.get_objects({A.CLASS: pkcs11.ObjectClass.SECRET_KEY}))))
"""


def test_two_processes_generating_token_keys_lose_nothing(tmp_path: Path) -> None:
    conf = make_region(tmp_path)
    env = {**os.environ, "HSPKCS11_CONF": str(conf), "HSPKCS11_SO_PIN": "12345678", "HSPKCS11_PIN": "1234"}
    subprocess.run(util() + ["init-token", "--free", "--label", "shared"], env=env, check=True,
                   capture_output=True)
    per_process = 2000
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, tag, str(per_process)], env=env, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for tag in ("a", "b")]
    start_together(procs)
    results = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, results):
        assert p.returncode == 0, err
    # Each writer, once done, sees at least its own keys; after both, everything.
    seen = [int(out.strip().splitlines()[-1]) for out, _ in results]
    assert all(n >= per_process for n in seen)
    assert max(seen) == 2 * per_process
    check = subprocess.run([sys.executable, "-c", """
import pkcs11, hspkcs11
from pkcs11 import Attribute as A
lib = pkcs11.lib(str(hspkcs11.module_path()))
with lib.get_token(token_label="shared").open(user_pin="1234") as s:
    labels = {o[A.LABEL] for o in s.get_objects({A.CLASS: pkcs11.ObjectClass.SECRET_KEY})}
print(len(labels))
"""], env=env, capture_output=True, text=True, check=True)
    assert int(check.stdout) == 2 * per_process
