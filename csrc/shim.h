/* The crossing between the C shim and the Python engine (hspkcs11/abi/bridge.py).
 * Plain C with no macros after the guard: the cffi build feeds it to cdef as well. */
#ifndef HS_SHIM_H
#define HS_SHIM_H

/* A result that Python produced; `ptr` stays valid until the calling thread's next
 * crossing (Python keeps the object alive in a thread-local). */
typedef struct hs_out { const CK_BYTE *ptr; CK_ULONG len; } hs_out;

/* One attribute of C_GetAttributeValue as Python resolved it: `status` is CKR_OK, or
 * CKR_ATTRIBUTE_SENSITIVE / CKR_ATTRIBUTE_TYPE_INVALID for that attribute alone; its
 * value is `len` bytes at `offset` in the call's one hs_out (Python writes the whole
 * array with one memmove). */
typedef struct hs_attr_out { CK_RV status; CK_ULONG offset; CK_ULONG len; } hs_attr_out;

/* A template flattened for Python (shim.c hs_flatten): per attribute, its type and
 * length as CK_ULONGs, then its value zero-padded to a multiple of 8 bytes. A NULL
 * value that claims a length has the length HS_NULL_VALUE and no value bytes. */
static const CK_ULONG HS_NULL_VALUE = (CK_ULONG)-1;

/* Operation kinds and data calls, shared by the *Init and data entry points. */
enum hs_op { HS_OP_ENCRYPT = 0, HS_OP_DECRYPT = 1, HS_OP_DIGEST = 2, HS_OP_SIGN = 3, HS_OP_VERIFY = 4 };
enum hs_step { HS_STEP_ONESHOT = 0, HS_STEP_UPDATE = 1, HS_STEP_FINAL = 2 };

/* Output capacity passed to Python: the caller's buffer length, or one of these. */
static const CK_ULONG HS_CAP_QUERY = (CK_ULONG)-1;   /* NULL buffer: length query */
static const CK_ULONG HS_CAP_BAD = (CK_ULONG)-2;     /* NULL length pointer: end op, ARGUMENTS_BAD */

/* Python lends the shim its maps of the region's head and epoch stamps (NULL, NULL
 * before it closes them): what shim.c's kept answers are checked against. */
void hs_set_pulse(const CK_BYTE *head, const CK_BYTE *epoch);

#endif
