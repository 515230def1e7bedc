"""The pytest plugin, used the way a user's integration suite uses it (in its own pytest run)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

USER_SUITE = '''
import pkcs11
import pytest
from pkcs11 import Attribute as A, KeyType, Mechanism


def store_secret(session):
    return session.generate_key(KeyType.AES, 256, store=True, label="app-key")


def use_secret(session):
    key = session.get_key(label="app-key")
    return key.encrypt(b"0" * 16, mechanism=Mechanism.AES_ECB)


def test_survives_one_zone_down(hspkcs11_region):
    s = hspkcs11_region.open()
    store_secret(s)
    hspkcs11_region.zone_down()
    assert len(use_secret(s)) == 16
    s.generate_key(KeyType.AES, 128, store=True, label="during-outage")
    hspkcs11_region.zone_up()
    assert len(list(s.get_objects({A.LABEL: "during-outage"}))) == 1


def test_all_zones_down_is_a_device_error(hspkcs11_region):
    s = hspkcs11_region.open()
    store_secret(s)
    hspkcs11_region.all_zones_down()
    with pytest.raises(pkcs11.exceptions.DeviceError):
        s.generate_key(KeyType.AES, 128, store=True)


def test_keys_work_during_a_rotation(hspkcs11_region):
    s = hspkcs11_region.open()
    store_secret(s)
    hspkcs11_region.rotation_in_progress()
    assert len(use_secret(hspkcs11_region.open())) == 16
    s.generate_key(KeyType.AES, 128, store=True, label="sealed-under-new")


def test_restore_pending_master_key(hspkcs11_region):
    store_secret(hspkcs11_region.open())
    restored = hspkcs11_region.restore_pending_master_key()
    s = restored.open()
    with pytest.raises(pkcs11.exceptions.DeviceError):
        use_secret(s)
    restored.load_master_key()
    assert len(use_secret(restored.open())) == 16


def test_each_test_gets_a_fresh_region(hspkcs11_region):
    s = hspkcs11_region.open()
    assert list(s.get_objects({A.LABEL: "app-key"})) == []
'''


def test_a_users_suite_runs_with_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_user_app.py").write_text(USER_SUITE)
    env = {k: v for k, v in os.environ.items() if k != "HSPKCS11_CONF"}
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "5 passed" in out.stdout, out.stdout + out.stderr
    assert out.returncode == 0
