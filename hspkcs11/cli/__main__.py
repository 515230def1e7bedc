"""`python -m hspkcs11.cli` is hspkcs11-util."""
from . import main

main()
