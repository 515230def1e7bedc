"""The Python side of the C ABI: one entry point per C_* function, CKR codes made here."""
