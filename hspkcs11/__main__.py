"""`python -m hspkcs11` prints the module path, like `hspkcs11-util module-path`."""
from . import module_path

print(module_path())
