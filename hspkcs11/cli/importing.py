"""`hspkcs11-util import`: keys and certificates from files, in the manner of
`softhsm2-util --import`.

The objects are made by the engine's C_CreateObject (`manage.create_object`), in a user
session, so every attribute rule a PKCS#11 client meets applies here too.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from ..consts import CKA, CKC, CKK, CKO, CKR, CKU, SessionFlag
from ..errors import P11Error
from ..mechanisms.registry import KEY_TYPES
from ..p11 import manage, sessions
from ..p11.state import Session, State
from .common import Failure, config, pass_ctx, secret

EXIT_CODES = """\b
Exit codes:
  0  the object(s) were created
  1  the operation failed (the one-line message says why and what to do)
  2  wrong usage"""


@contextlib.contextmanager
def user_session(st: State, label: str, pin: bytes) -> Iterator[Session]:
    """A R/W session on our token `label`, with the user logged in."""
    slots = [slot for slot, t in st.slots().items()
             if t is not None and t.label.decode(errors="replace").rstrip() == label]
    if not slots:
        raise Failure(f"no token labelled {label!r}; make one with "
                      f"`hspkcs11-util init-token --free --label {label}`")
    h = sessions.open_session(st, slots[0], SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION)
    try:
        try:
            sessions.login(st, h, CKU.USER, pin)
        except P11Error as exc:
            if exc.rv == CKR.PIN_INCORRECT:
                raise Failure(f"wrong user PIN for token {label!r}") from exc
            raise
        yield st.session(h)
    finally:
        sessions.close_session(st, h)


# ---- reading the file ------------------------------------------------------------------------

def _encrypted(data: bytes) -> bool:
    return b"ENCRYPTED" in data[:200] if data.lstrip().startswith(b"-----") else False


def load_key_or_cert(data: bytes, file_pin: str | None) -> Any:
    """A `cryptography` private key or certificate from PEM or DER bytes."""
    pem = data.lstrip().startswith(b"-----BEGIN")
    if pem and b"-----BEGIN CERTIFICATE-----" in data:
        try:
            return x509.load_pem_x509_certificate(data)
        except ValueError as exc:
            raise Failure(f"the PEM certificate cannot be read ({exc}); check the file") from None
    if pem and b"PRIVATE KEY-----" not in data:
        raise Failure("the PEM file holds neither a private key nor a certificate "
                      "(expected BEGIN PRIVATE KEY, RSA/EC PRIVATE KEY or CERTIFICATE)")
    loader = serialization.load_pem_private_key if pem else serialization.load_der_private_key
    password = file_pin.encode() if file_pin else None
    try:
        return loader(data, password)
    except TypeError:
        # cryptography: a password given for a clear key, or none for an encrypted one
        if password is not None and not _encrypted(data):
            try:
                return loader(data, None)
            except (TypeError, ValueError):
                pass
        raise Failure("the key file is encrypted: give its password with --file-pin "
                      "or $HSPKCS11_FILE_PIN") from None
    except ValueError:
        if pem:
            if _encrypted(data):
                raise Failure("cannot decrypt the key file: wrong --file-pin password?") from None
            raise Failure("the PEM private key cannot be read; check the file") from None
    except Exception:  # noqa: BLE001 - cryptography's unsupported-algorithm errors
        if pem:
            raise Failure("the key in the file is of a type hspkcs11 cannot import "
                          "(RSA, EC and Ed25519/Ed448 can be)") from None
    try:
        return x509.load_der_x509_certificate(data)
    except ValueError:
        pass
    raise Failure("the file is neither a PEM/DER private key (PKCS#8 or traditional) nor an "
                  "X.509 certificate; if it is an encrypted DER key, give --file-pin")


def _needs_password(data: bytes) -> bool:
    """True for a key that cannot be loaded without a password."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return _encrypted(data) and b"-----BEGIN CERTIFICATE-----" not in data
    try:
        serialization.load_der_private_key(data, None)
    except TypeError:
        return True
    except Exception:  # noqa: BLE001 - not a clear DER key: maybe a certificate
        return False
    return False


# ---- templates -------------------------------------------------------------------------------

def key_templates(key: Any, label: bytes, ckaid: bytes, extractable: bool) -> tuple[dict[int, Any],
                                                                                     dict[int, Any]]:
    """(public, private) templates for C_CreateObject of a `cryptography` private key."""
    if isinstance(key, rsa.RSAPrivateKey):
        ckk = CKK.RSA
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        ckk = CKK.EC
    elif isinstance(key, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        ckk = CKK.EC_EDWARDS
    else:
        raise Failure(f"{type(key).__name__} keys cannot be imported (RSA, EC and Ed25519/Ed448 can be)")
    spec = KEY_TYPES[ckk]
    assert spec.from_private is not None
    try:
        pub_values, priv_values = spec.from_private(key)
    except KeyError as exc:
        raise Failure(f"the key's curve {exc} is not supported by hspkcs11") from None
    pub_values = {k: v for k, v in pub_values.items() if k != CKA.MODULUS_BITS}  # token-computed
    common = {CKA.KEY_TYPE: ckk, CKA.TOKEN: True, CKA.LABEL: label, CKA.ID: ckaid}
    is_rsa = ckk == CKK.RSA
    public = {CKA.CLASS: CKO.PUBLIC_KEY, **common, CKA.PRIVATE: False, CKA.VERIFY: True,
              CKA.ENCRYPT: is_rsa, CKA.WRAP: is_rsa, CKA.VERIFY_RECOVER: is_rsa, **pub_values}
    private = {CKA.CLASS: CKO.PRIVATE_KEY, **common, CKA.PRIVATE: True, CKA.SIGN: True,
               CKA.DECRYPT: is_rsa, CKA.UNWRAP: is_rsa, CKA.SIGN_RECOVER: is_rsa,
               CKA.DERIVE: ckk == CKK.EC, CKA.SENSITIVE: True, CKA.EXTRACTABLE: extractable,
               **priv_values}
    return public, private


def cert_template(cert: x509.Certificate, label: bytes, ckaid: bytes) -> dict[int, Any]:
    serial = cert.serial_number
    # CKA_SERIAL_NUMBER is the DER encoding of the serial number (Base §4.6.3)
    body = serial.to_bytes(serial.bit_length() // 8 + 1, "big", signed=True) if serial >= 0 \
        else serial.to_bytes((serial.bit_length() + 8) // 8, "big", signed=True)
    return {CKA.CLASS: CKO.CERTIFICATE, CKA.CERTIFICATE_TYPE: CKC.X_509, CKA.TOKEN: True,
            CKA.PRIVATE: False, CKA.LABEL: label, CKA.ID: ckaid,
            CKA.SUBJECT: cert.subject.public_bytes(), CKA.ISSUER: cert.issuer.public_bytes(),
            CKA.SERIAL_NUMBER: bytes([0x02, len(body)]) + body if len(body) < 128
            else bytes([0x02, 0x81, len(body)]) + body,
            CKA.VALUE: cert.public_bytes(serialization.Encoding.DER)}


def secret_template(value: bytes, ckk: int, label: bytes, ckaid: bytes, extractable: bool) -> dict[int, Any]:
    if ckk == CKK.AES and len(value) not in (16, 24, 32):
        raise Failure(f"an AES key file holds 16, 24 or 32 raw bytes, this one {len(value)}")
    if not value:
        raise Failure("the key file is empty")
    return {CKA.CLASS: CKO.SECRET_KEY, CKA.KEY_TYPE: ckk, CKA.TOKEN: True, CKA.PRIVATE: True,
            CKA.LABEL: label, CKA.ID: ckaid, CKA.SENSITIVE: True, CKA.EXTRACTABLE: extractable,
            CKA.VALUE: value}


# ---- the command -----------------------------------------------------------------------------

@click.command("import", epilog=EXIT_CODES)
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--token", "token_label", required=True, help="Label of our token to import into.")
@click.option("--label", required=True, help="CKA_LABEL of the new object(s).")
@click.option("--id", "hex_id", default="", help="CKA_ID of the new object(s), in hex (e.g. a1b2).")
@click.option("--pin", help="User PIN (prefer $HSPKCS11_PIN or the prompt).")
@click.option("--file-pin", help="Password of an encrypted key file (prefer $HSPKCS11_FILE_PIN or the prompt).")
@click.option("--aes", "kind", flag_value="aes", help="FILE holds the raw bytes of an AES key.")
@click.option("--generic", "kind", flag_value="generic", help="FILE holds the raw bytes of a generic secret.")
@click.option("--extractable", is_flag=True, help="Make a private or secret key CKA_EXTRACTABLE (default: not).")
@pass_ctx
def import_cmd(ctx: click.Context, file: Path, token_label: str, label: str, hex_id: str, pin: str | None,
               file_pin: str | None, kind: str | None, extractable: bool) -> None:
    """Import a private key, a certificate or a secret key from FILE into a token.

    A PEM or DER private key (RSA, EC, Ed25519/Ed448; PKCS#8 or the traditional
    formats; encrypted PEM/PKCS#8 with --file-pin) becomes a private key object and
    its public key object, both with --label and --id. The private key is CKA_SENSITIVE
    and not CKA_EXTRACTABLE unless --extractable. A PEM or DER X.509 certificate becomes
    a CKO_CERTIFICATE. With --aes or --generic, FILE holds raw secret-key bytes.

    \b
    Example:
      HSPKCS11_PIN=1234 hspkcs11-util import key.pem --token app --label signer --id 01
      hspkcs11-util import cert.der --token app --label signer --id 01
    """
    try:
        data = file.read_bytes()
    except OSError as exc:
        raise Failure(f"cannot read {file}: {exc.strerror}") from None
    try:
        ckaid = bytes.fromhex(hex_id)
    except ValueError:
        raise Failure(f"--id must be hex digits (e.g. a1b2), not {hex_id!r}") from None
    lab = label.encode()
    if kind is not None:
        templates = [secret_template(data, CKK.AES if kind == "aes" else CKK.GENERIC_SECRET,
                                     lab, ckaid, extractable)]
        what = f"{kind} secret key"
    else:
        if file_pin is None and _needs_password(data):
            file_pin = secret(None, "HSPKCS11_FILE_PIN", "Key file password (--file-pin)")
        obj = load_key_or_cert(data, file_pin)
        if isinstance(obj, x509.Certificate):
            templates, what = [cert_template(obj, lab, ckaid)], "certificate"
        else:
            templates = list(key_templates(obj, lab, ckaid, extractable))
            what = "private key and its public key"
    user_pin = secret(pin, "HSPKCS11_PIN", "User PIN").encode()
    st = State(config(ctx))
    try:
        with user_session(st, token_label, user_pin) as s:
            made = []
            try:
                for template in templates:
                    made.append(manage.create_object(st, s, template))
            except P11Error as exc:
                for handle in made:   # all or nothing
                    manage.destroy_object(st, s, handle)
                raise Failure(f"the token refused the object: CKR_{exc.rv.name}"
                              + (f" ({exc.why})" if exc.why else "")) from exc
    finally:
        st.close()
    click.echo(f"imported {what} {label!r} (id {ckaid.hex() or 'empty'}) into token {token_label!r}")


def register(cli: click.Group) -> None:
    cli.add_command(import_cmd)
