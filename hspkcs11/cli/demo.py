"""`hspkcs11-util demo`: the story so far, on a throw-away region, through PKCS#11."""
from __future__ import annotations

import os
import secrets
from dataclasses import replace
import tempfile
from pathlib import Path

import click

from .. import module_path
from ..config import load as load_config
from ..consts import CKU, SessionFlag
from .. import drill
from ..errors import P11Error
from ..hsm import backup
from ..hsm import masterkey as mk
from ..hsm import rotation
from ..hsm.files import private_dir
from ..hsm.region import Region
from ..hsm.replica import RegionService
from ..p11 import sessions, tokens
from ..p11.state import State
from .common import Failure, pass_ctx
from .status import unit_status

SO_PIN, USER_PIN = "demo-so-pin", "demo-pin"


def step(text: str) -> None:
    click.secho(f"\n== {text}", bold=True)


@click.command("demo")
@click.option("--dir", "workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to put the demo region (default: a new temporary directory).")
@pass_ctx
def demo(ctx: click.Context, workdir: Path | None) -> None:
    """Run the whole story on a throw-away region: units, master key, keys in use, a zone lost.

    \b
    Example:
      hspkcs11-util demo
    """
    try:
        import pkcs11
        from pkcs11 import Attribute as A, KeyType, Mechanism
        from pkcs11.mechanisms import GCMParams
        from pkcs11.util.ec import encode_named_curve_parameters
    except ImportError:
        raise Failure("the demo drives the module through python-pkcs11: pip install python-pkcs11") from None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="hspkcs11-demo-"))
    if workdir.exists() and any(workdir.iterdir()):
        raise Failure(f"{workdir} is not empty: give a new directory to --dir, or none")
    private_dir(workdir)
    conf = workdir / "hspkcs11.conf"
    conf.write_text(f"data.dir = {workdir / 'data'}\nregion = us-south\n"
                    "zones = us-south-1, us-south-2, us-south-3\nlog.level = INFO\n"
                    f"log.file = {workdir / 'hspkcs11.log'}\n")
    os.environ["HSPKCS11_CONF"] = str(conf)
    config = load_config(conf)

    step(f"1. A region: {config.region} with zones {', '.join(config.zones)}  (config {conf})")
    for unit in Region(config).init():
        click.echo(f"   crypto unit {unit.name} at {unit.dir}")

    step("2. The customer's master key: two password-protected key parts, XORed in every unit")
    password = secrets.token_urlsafe(12)
    parts = [workdir / f"keypart-{i}.json" for i in (1, 2)]
    for part in parts:
        click.echo(f"   key part {part.name}: verification pattern {mk.part_new(part, password)}")
    key = mk.combine([mk.part_read(p, password) for p in parts])
    for unit in Region(config).units():
        unit.registers.load(key)
        unit.registers.commit()
        regs = unit.registers.activate()
        click.echo(f"   unit {unit.name}: current master key MKVP {regs.current_mkvp}")

    step("3. A token, initialised as `hspkcs11-util init-token` does it")
    st = State(config)
    slot = max(st.slots())
    tokens.init_token(st, slot, SO_PIN.encode(), b"demo".ljust(32, b" "))
    h = sessions.open_session(st, slot, SessionFlag.SERIAL_SESSION | SessionFlag.RW_SESSION)
    sessions.login(st, h, CKU.SO, SO_PIN.encode())
    tokens.init_pin(st, st.session(h), USER_PIN.encode())
    st.close()
    click.echo(f"   token 'demo' in slot {slot}; module {module_path()}")

    step("4. Keys in use through PKCS#11 (python-pkcs11 loading the module)")
    lib = pkcs11.lib(str(module_path()))
    with lib.get_token(token_label="demo").open(user_pin=USER_PIN, rw=True) as s:
        aes = s.generate_key(KeyType.AES, 256, store=True, label="payments-key")
        gcm = GCMParams(s.generate_random(96), b"demo")
        ct = aes.encrypt(b"card 4111-1111-1111-1111", mechanism=Mechanism.AES_GCM, mechanism_param=gcm)
        click.echo(f"   AES-256-GCM: {len(ct)}-byte ciphertext, decrypts to "
                   f"{aes.decrypt(ct, mechanism=Mechanism.AES_GCM, mechanism_param=gcm)!r}")
        pub, priv = s.generate_keypair(KeyType.EC, store=True, label="signing-key",
                                       public_template={A.EC_PARAMS: encode_named_curve_parameters("secp256r1")})
        sig = priv.sign(b"release 1.0", mechanism=Mechanism.ECDSA_SHA256)
        click.echo(f"   ECDSA P-256: signature of {len(sig)} bytes, verifies: "
                   f"{pub.verify(b'release 1.0', sig, mechanism=Mechanism.ECDSA_SHA256)}")
        try:
            aes[A.VALUE]
        except pkcs11.exceptions.AttributeSensitive:
            click.echo("   reading the AES key's value: refused (CKR_ATTRIBUTE_SENSITIVE)")
        plain = s.generate_key(KeyType.AES, 256, store=True, label="exportable",
                               template={A.SENSITIVE: False, A.EXTRACTABLE: True})
        value = plain[A.VALUE]

    step("5. At rest, every key is wrapped under the master key (RFC 5649)")
    files = [p for p in (workdir / "data").rglob("*") if p.is_file()]
    leaks = [p for p in files if value in p.read_bytes()]
    click.echo(f"   scanned {len(files)} files of the data directory for the exportable key's "
               f"32 bytes: {'FOUND in ' + str(leaks) if leaks else 'not found'}")
    if leaks:
        raise Failure("a plaintext key reached the data directory")

    step("6. Lose a zone in the middle of work: the application does not notice")
    svc = RegionService(config)
    with lib.get_token(token_label="demo").open(user_pin=USER_PIN, rw=True) as s:
        signer = s.get_key(label="signing-key", object_class=pkcs11.ObjectClass.PRIVATE_KEY)
        svc.faults.set("us-south-1", down=True)
        svc.record("zone-down", zone="us-south-1", by="demo")
        click.echo("   zone us-south-1 is down (as `hspkcs11-util zone down us-south-1` does)")
        sig = signer.sign(b"during the outage", mechanism=Mechanism.ECDSA_SHA256)
        click.echo(f"   signing goes on: {len(sig)}-byte signature")
        s.generate_key(KeyType.AES, 256, store=True, label="made-during-outage")
        click.echo("   a new token key is stored in the two zones still up")
    for row in unit_status(svc):
        click.echo(f"   {row['zone']}: {row['health']}, {row['objects']} objects, lag {row['lag']}")
    svc.faults.clear("us-south-1")
    with svc.write_lock():
        _, head = svc.catch_up(progress=lambda z, n: click.echo(f"   zone {z} back: caught up {n} change(s)"))
    svc.record("zone-up", zone="us-south-1", by="demo")
    digests = {u.zone: u.store.content_digest() for u in svc.units}
    click.echo(f"   every unit at position {head}, same content: {len(set(digests.values())) == 1}")
    svc.close()

    step("7. Rotate the master key while an application keeps using its keys")
    new_parts = [workdir / f"new-keypart-{i}.json" for i in (1, 2)]
    for part in new_parts:
        mk.part_new(part, password)
    new_key = mk.combine([mk.part_read(p, password) for p in new_parts])
    svc = RegionService(config)
    for unit in svc.units:
        unit.registers.load(new_key)
        unit.registers.commit()
    with lib.get_token(token_label="demo").open(user_pin=USER_PIN, rw=True) as s:
        signer = s.get_key(label="signing-key", object_class=pkcs11.ObjectClass.PRIVATE_KEY)
        uses = []

        def progress(n: int) -> None:    # the application signs between re-wrap batches
            uses.append(len(signer.sign(b"during rotation", mechanism=Mechanism.ECDSA_SHA256)))

        done = rotation.rotate(svc, progress=progress, batch=2)
        assert done is not None
        click.echo(f"   re-wrapped every key from {done.old_mkvp} to {done.new_mkvp} "
                   f"(C fast path, RFC 5649); {len(uses)} signatures made during it, none failed")
    click.echo(f"   keys sealed under the old key now: {sum(u.store.sealed_under(done.old_mkvp) for u in svc.units)}")
    svc.close()

    step("8. Daily backup to the backup region (SQLite online backup, MAC under the master key)")
    config = replace(config, backup_dir=workdir / "backups")
    svc = RegionService(config)
    made = backup.make_backup(svc)
    svc.close()
    m = made.backup.manifest
    click.echo(f"   backup {made.backup.id}: {m['objects']} objects, MKVP {m['mkvp']}, in {made.backup.path.parent}")

    step("9. The region is lost; restore it in eu-de")
    lost = RegionService(config)
    for zone in config.zones:
        lost.faults.set(zone, down=True)
        lost.record("zone-down", zone=zone, by="demo")
    lost.close()
    click.echo(f"   every zone of {config.region} is down")
    restored = backup.restore(config, made.backup.id, "eu-de", data_dir=workdir / "eu-de")
    click.echo(f"   region eu-de: zones {', '.join(restored.config.zones)}, config {restored.conf_path}")
    st = State(restored.config)
    try:
        drill.use_every_key(st, USER_PIN.encode())
    except P11Error as exc:
        click.echo(f"   tokens are there ({len(st.tokens())}), but key use is refused: CKR_{exc.rv.name}")
    finally:
        st.close()

    step("10. Only the same master key brings the keys back")
    wrong = mk.combine([os.urandom(32), os.urandom(32)])
    svc = RegionService(restored.config)
    try:
        backup.check_restored_key(svc, wrong)
    except mk.MasterKeyError as exc:
        click.echo(f"   another key is refused: {str(exc).split(';')[0]}")
    key = mk.combine([mk.part_read(p, password) for p in new_parts])
    click.echo(f"   {backup.check_restored_key(svc, key)}")
    for unit in svc.units:
        unit.registers.load(key)
        unit.registers.commit()
        unit.registers.activate()
    svc.close()
    st = State(restored.config)
    try:
        click.echo(f"   same key loaded from its parts: {drill.use_every_key(st, USER_PIN.encode())} keys used in eu-de")
    finally:
        st.close()
    click.echo(f"\nThe demo stays in {workdir}; the log is {workdir / 'hspkcs11.log'}. "
               "`hspkcs11-util drill` rehearses this runbook with its recovery figures.")


def register(cli: click.Group) -> None:
    cli.add_command(demo)
