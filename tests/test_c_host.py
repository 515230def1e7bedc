"""The module as a C host sees it: tests/c/abi_check.c, compiled with gcc and run against
hspkcs11 and SoftHSM2.

abi_check loads the module with dlopen(RTLD_NOW | RTLD_LOCAL), as pkcs11-tool does, and
prints one PASS/FAIL line per check (the return codes PKCS#11 v2.40 names). It runs once
per module; each test below owns a group of its checks, so a deliberate difference is a
strict xfail of its own test and nothing else.
"""
from __future__ import annotations

import os
import re
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from conftest import SO_PIN, USER_PIN, Module, which

SOURCE = Path(__file__).resolve().parent / "c" / "abi_check.c"
LINE = re.compile(r"^(PASS|FAIL) (\S+?)(?:: (.*))?$")
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$")


@dataclass
class Run:
    rc: int
    output: str
    checks: dict[str, tuple[bool, str]]
    summary: tuple[int, int] | None


def compile_c(source: Path, target: Path) -> Path:
    subprocess.run([which("gcc"), "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-O1", "-o", str(target),
                    str(source), "-ldl", "-lpthread"], check=True, capture_output=True, text=True)
    return target


@pytest.fixture(scope="session")
def abi_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_c(SOURCE, tmp_path_factory.mktemp("c") / "abi_check")


@pytest.fixture(scope="module")
def run(module: Module, abi_check: Path) -> Run:
    label = f"c-{uuid.uuid4().hex[:10]}"
    proc = subprocess.run([str(abi_check), module.path, label, SO_PIN, USER_PIN], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **module.env})
    checks: dict[str, tuple[bool, str]] = {}
    summary = None
    for line in proc.stdout.splitlines():
        if m := LINE.match(line):
            assert m[2] not in checks, f"check {m[2]} reported twice"
            checks[m[2]] = (m[1] == "PASS", m[3] or "")
        elif m := SUMMARY.match(line):
            summary = (int(m[1]), int(m[2]))
    return Run(proc.returncode, proc.stdout + proc.stderr, checks, summary)


# Every check abi_check prints, grouped by the test that owns it.
GROUPS: dict[str, list[str]] = {
    "function_list": ["load.dlopen", "load.symbol", "fl.null_argument", "load.get_function_list", "fl.version",
                      "fl.all_entries", "fl.through_itself"],
    "before_initialize": ["preinit.get_info", "preinit.get_slot_list", "preinit.open_session",
                          "preinit.close_session", "preinit.finalize"],
    "initialize_arguments": ["init.reserved_not_null", "init.some_mutex_functions",
                             "init.bad_arguments_leave_it_uninitialized", "init.os_locking_ok", "init.twice",
                             "init.finalize_reserved_not_null", "init.still_initialized"],
    "cant_lock": ["init.app_mutexes_without_os_locking"],
    "info": ["info.get_info_null", "info.get_info", "info.slot_info_null", "info.token_info_null", "info.slot_info",
             "info.slot_info_bad_slot", "info.token_info_bad_slot", "info.mechanism_list_bad_slot",
             "info.mechanism_info_bad_slot", "info.open_session_bad_slot", "mechs.info", "mechs.info_unknown"],
    "list_lengths": ["slots.count_query", "slots.too_short_list", "slots.filled", "mechs.count_query",
                     "mechs.too_short_list", "mechs.filled"],
    "token": ["token.free_slot", "token.init_token", "token.found_by_label", "token.open_session",
              "token.so_login", "token.init_pin", "token.so_logout", "token.user_login", "keys.generate_aes",
              "keys.generate_hmac", "token.close_session"],
    "encrypt": ["encrypt.init", "encrypt.length_query", "encrypt.too_short_buffer", "encrypt.right_buffer",
                "encrypt.finished", "encrypt.decrypts", "encrypt_final.update", "encrypt_final.length_query",
                "encrypt_final.too_short_buffer", "encrypt_final.right_buffer", "encrypt_final.finished"],
    "sign": ["sign.init", "sign.length_query", "sign.too_short_buffer", "sign.right_buffer", "sign.finished",
             "sign.verifies", "sign_final.update", "sign_final.length_query", "sign_final.too_short_buffer",
             "sign_final.right_buffer", "sign_final.finished"],
    "digest": ["digest.init", "digest.length_query", "digest.too_short_buffer", "digest.right_buffer",
               "digest.finished", "digest_final.update", "digest_final.length_query",
               "digest_final.too_short_buffer", "digest_final.right_buffer", "digest_final.finished"],
    "attributes": ["attrs.mixed_return_code", "attrs.mixed_readable_filled", "attrs.mixed_sensitive_unavailable",
                   "attrs.mixed_invalid_type_unavailable", "attrs.mixed_too_short_unavailable",
                   "attrs.sensitive_alone", "attrs.invalid_type_alone", "attrs.too_short_alone",
                   "attrs.length_query", "attrs.label_read"],
    "handles": ["handles.session_invalid", "handles.session_zero", "handles.open_second_session",
                "handles.close_second_session", "handles.session_stale", "handles.session_stale_close",
                "handles.session_stale_digest_init", "handles.object_invalid", "handles.object_zero",
                "handles.create_object", "handles.destroy_object", "handles.object_stale",
                "handles.object_stale_destroy", "handles.generate_key", "handles.destroy_key"],
    "key_handles": ["handles.key_invalid_encrypt", "handles.key_invalid_sign", "handles.key_stale_encrypt",
                    "handles.key_stale_decrypt"],
    "nulls": ["null.login_pin", "null.init_pin", "null.get_slot_list_count", "null.get_mechanism_list_count",
              "null.get_mechanism_info", "null.open_session_handle", "null.get_session_info", "null.set_pin_old",
              "null.create_object_template", "null.create_object_handle", "null.copy_object_handle",
              "null.get_object_size", "null.get_attribute_value_template", "null.set_attribute_value_template",
              "null.find_objects_init_template", "null.find_objects_init_empty", "null.find_objects_handles",
              "null.find_objects_count", "null.encrypt_init_mechanism", "null.encrypt_input",
              "null.encrypt_output_length", "null.decrypt_init_mechanism", "null.digest_init_mechanism",
              "null.digest_output_length", "null.sign_init_mechanism", "null.sign_final_length",
              "null.verify_init_mechanism", "null.verify_signature", "null.generate_key_mechanism",
              "null.generate_key_handle", "null.generate_key_pair_mechanism", "null.wrap_key_length",
              "null.unwrap_key_input", "null.derive_key_mechanism", "null.generate_random_buffer"],
    "error_ends_operation": ["null.encrypt_error_ends_operation"],
    "reload": ["final.finalize", "final.after_finalize", "reload.dlclose", "reload.dlopen", "reload.symbol",
               "reload.get_function_list", "reload.not_initialized", "reload.initialize", "reload.token_visible",
               "reload.digest", "reload.finalize"],
    "fork": ["fork.busy_session", "fork.child_digest", "fork.child_finalize", "fork.children_exit_cleanly",
             "fork.parent_thread_kept_working", "fork.parent_works_after"],
    "fork_not_initialized": ["fork.child_not_initialized"],
    "fork_initialize": ["fork.child_initialize"],
}


def assert_passed(run: Run, group: str) -> None:
    missing = [name for name in GROUPS[group] if name not in run.checks]
    failed = [f"{name}: {run.checks[name][1]}" for name in GROUPS[group]
              if name in run.checks and not run.checks[name][0]]
    assert not missing and not failed, f"missing {missing}, failed {failed}\n--- output ---\n{run.output[-4000:]}"


def test_every_check_ran_and_the_summary_agrees(run: Run) -> None:
    owned = {name for names in GROUPS.values() for name in names}
    assert set(run.checks) == owned, (set(run.checks) ^ owned, run.output[-3000:])
    failures = sum(1 for ok, _ in run.checks.values() if not ok)
    assert run.summary == (len(run.checks) - failures, failures)
    assert (run.rc != 0) == (failures > 0), run.output[-3000:]


def test_function_list_has_version_2_40_and_68_entries(run: Run) -> None:
    assert_passed(run, "function_list")


def test_calls_before_c_initialize_are_not_initialized(run: Run) -> None:
    assert_passed(run, "before_initialize")


def test_c_initialize_and_c_finalize_check_their_arguments(run: Run) -> None:
    assert_passed(run, "initialize_arguments")


def test_application_mutexes_without_os_locking_cant_lock(run: Run, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 accepts and uses the application's mutex functions; hspkcs11 locks with "
                       "Python's own primitives only and answers CKR_CANT_LOCK, as Base §5.4 C_Initialize "
                       "(functions supplied, CKF_OS_LOCKING_OK not set) prescribes for a library that cannot")
    assert_passed(run, "cant_lock")


def test_info_calls_check_pointers_and_slot_ids(run: Run) -> None:
    assert_passed(run, "info")


def test_slot_and_mechanism_lists_follow_the_length_convention(run: Run) -> None:
    assert_passed(run, "list_lengths")


def test_a_token_is_made_with_c_inittoken_and_c_initpin(run: Run) -> None:
    assert_passed(run, "token")


def test_encrypt_length_query_keeps_the_operation_and_the_result_decrypts(run: Run) -> None:
    assert_passed(run, "encrypt")


def test_sign_and_sign_final_follow_the_length_convention(run: Run) -> None:
    assert_passed(run, "sign")


def test_digest_and_digest_final_follow_the_length_convention(run: Run) -> None:
    assert_passed(run, "digest")


def test_get_attribute_value_applies_per_attribute_rules(run: Run) -> None:
    assert_passed(run, "attributes")


def test_invalid_and_stale_session_and_object_handles(run: Run) -> None:
    assert_passed(run, "handles")


def test_invalid_and_stale_key_handles_are_key_handle_invalid(run: Run, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 answers CKR_OBJECT_HANDLE_INVALID, which the Base spec does not list for "
                       "C_EncryptInit/C_DecryptInit/C_SignInit; they name CKR_KEY_HANDLE_INVALID")
    assert_passed(run, "key_handles")


def test_null_pointers_are_arguments_bad_never_a_crash(run: Run) -> None:
    assert_passed(run, "nulls")


def test_an_encrypt_error_ends_the_operation(run: Run, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 keeps the operation after C_Encrypt fails with CKR_ARGUMENTS_BAD; Base, "
                       "C_Encrypt: a call always terminates the operation unless it returns "
                       "CKR_BUFFER_TOO_SMALL or is a successful length query")
    assert_passed(run, "error_ends_operation")


def test_finalize_unload_and_load_again_in_one_process(run: Run) -> None:
    assert_passed(run, "reload")


def test_fork_child_initializes_and_works_while_a_parent_thread_is_busy(run: Run) -> None:
    assert_passed(run, "fork")


def test_fork_child_is_not_initialized_until_it_calls_c_initialize(run: Run,
                                                                    differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2's child answers CKR_OK from the parent's state; the spec's 'Applications "
                       "and processes' leaves this undefined and names CKR_CRYPTOKI_NOT_INITIALIZED as the "
                       "ideal answer, which hspkcs11 gives")
    assert_passed(run, "fork_not_initialized")


def test_fork_child_may_call_c_initialize(run: Run, differs: Callable[[str, str], None]) -> None:
    differs("softhsm", "SoftHSM2 answers CKR_CRYPTOKI_ALREADY_INITIALIZED in the child; 'Applications and "
                       "processes' (v2.40 Usage Guide, v2.20 §6.6.1): the child is a separate application and "
                       "needs to perform its own C_Initialize call")
    assert_passed(run, "fork_initialize")
