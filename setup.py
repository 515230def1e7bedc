"""Builds two cffi modules: the PKCS#11 module itself (hspkcs11/libhspkcs11.so, an
embedding of the engine) and the AES key-wrap fast path (hspkcs11._aeskw)."""
import os

from setuptools import setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """Give the PKCS#11 module the plain name clients load by path."""

    def get_ext_filename(self, fullname: str) -> str:
        # Called with the full dotted name and with its last part alone; keep the folder.
        name = super().get_ext_filename(fullname)
        if fullname.rsplit(".", 1)[-1] == "_shim":
            return os.path.join(os.path.dirname(name), "libhspkcs11.so")
        return name


setup(
    cffi_modules=["csrc/build_shim.py:ffibuilder", "csrc/build_aeskw.py:ffibuilder"],
    cmdclass={"build_ext": BuildExt},
)
