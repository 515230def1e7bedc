/* badinput: every one of the 68 PKCS#11 v2.40 functions called with bad input.
 *
 *   badinput MODULE_PATH [TOKEN_LABEL SO_PIN USER_PIN] [--skip CASE]... [--only CASE]...
 *
 * CASE is "FUNCTION.case", as printed. --skip leaves a row out (it prints "skip ..."):
 * for a module that crashes on it; --only runs just the rows named (the phases before
 * them are still set up).
 *
 * Each CASE below is one row: the function, what is bad about the call, and the return
 * code the PKCS#11 v2.40 Base Specification names for it; its body is the call. The
 * bad inputs: NULL pointers and zero or short lengths; invalid (never issued), zero and
 * stale (closed or destroyed) session and object handles; wrong mechanism parameters;
 * templates with an unknown type, a wrong value length or a duplicated attribute; and
 * calls in the wrong state (not initialised, operation active or not, not logged in,
 * read-only session). Two tables of calls, SESSION_CALL and OBJECT_CALL, give each
 * function that takes a session (or an object) its handle rows. One CANARY row, a
 * caller's own memory bug, runs only when named: it is valgrind's control.
 *
 * Rows run phase by phase, in the order of this file within a phase:
 *   NOINIT     before C_Initialize
 *   INIT       initialised, before the token is made (the rows use the slot with no token)
 *   PUBLIC     a token with its user PIN set, nobody logged in
 *   USER       the user logged in, keys made
 *   SO         the SO logged in (so no read-only session may exist)
 *   FINAL      after C_Finalize
 * Before each row the phase's read-write and read-only sessions are opened afresh, so
 * an operation a row leaves active does not leak into the next. A long-lived "keeper"
 * session holds the login and the session keys the rows use.
 *
 * Output: one line per row, "ok|FAIL FUNCTION CASE got=0x.. want=0x.."; a result with
 * bit 31 set means a step the row needed before its bad call failed (that step's code
 * is in the low bits). A signal prints "CRASH FUNCTION CASE". The last line is
 * "badinput: N cases, P ok, F FAIL"; the exit status is 1 when F > 0 and 2 when a
 * phase could not be set up. tests/test_badinput.py compiles and runs it against both
 * modules, and under valgrind.
 *
 * Only the types come from csrc/pkcs11.h; constants are written here from the spec.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../csrc/pkcs11.h"

/* ---- constants (PKCS#11 v2.40 pkcs11t.h values) -------------------------------------- */

#define CKR_OK                              0x000UL
#define CKR_SLOT_ID_INVALID                 0x003UL
#define CKR_ARGUMENTS_BAD                   0x007UL
#define CKR_ATTRIBUTE_READ_ONLY             0x010UL
#define CKR_ATTRIBUTE_SENSITIVE             0x011UL
#define CKR_ATTRIBUTE_TYPE_INVALID          0x012UL
#define CKR_ATTRIBUTE_VALUE_INVALID         0x013UL
#define CKR_DATA_LEN_RANGE                  0x021UL
#define CKR_ENCRYPTED_DATA_LEN_RANGE        0x041UL
#define CKR_FUNCTION_NOT_PARALLEL           0x051UL
#define CKR_FUNCTION_NOT_SUPPORTED          0x054UL
#define CKR_KEY_HANDLE_INVALID              0x060UL
#define CKR_KEY_TYPE_INCONSISTENT           0x063UL
#define CKR_KEY_INDIGESTIBLE                0x067UL
#define CKR_KEY_FUNCTION_NOT_PERMITTED      0x068UL
#define CKR_KEY_UNEXTRACTABLE               0x06AUL
#define CKR_MECHANISM_INVALID               0x070UL
#define CKR_MECHANISM_PARAM_INVALID         0x071UL
#define CKR_OBJECT_HANDLE_INVALID           0x082UL
#define CKR_OPERATION_ACTIVE                0x090UL
#define CKR_OPERATION_NOT_INITIALIZED       0x091UL
#define CKR_PIN_INCORRECT                   0x0A0UL
#define CKR_PIN_LEN_RANGE                   0x0A2UL
#define CKR_SESSION_HANDLE_INVALID          0x0B3UL
#define CKR_SESSION_PARALLEL_NOT_SUPPORTED  0x0B4UL
#define CKR_SESSION_READ_ONLY               0x0B5UL
#define CKR_SESSION_EXISTS                  0x0B6UL
#define CKR_SESSION_READ_ONLY_EXISTS        0x0B7UL
#define CKR_SESSION_READ_WRITE_SO_EXISTS    0x0B8UL
#define CKR_SIGNATURE_INVALID               0x0C0UL
#define CKR_SIGNATURE_LEN_RANGE             0x0C1UL
#define CKR_TEMPLATE_INCOMPLETE             0x0D0UL
#define CKR_TEMPLATE_INCONSISTENT           0x0D1UL
#define CKR_TOKEN_NOT_RECOGNIZED            0x0E1UL
#define CKR_UNWRAPPING_KEY_HANDLE_INVALID   0x0F0UL
#define CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT 0x0F2UL
#define CKR_USER_ALREADY_LOGGED_IN          0x100UL
#define CKR_USER_NOT_LOGGED_IN              0x101UL
#define CKR_USER_TYPE_INVALID               0x103UL
#define CKR_USER_ANOTHER_ALREADY_LOGGED_IN  0x104UL
#define CKR_WRAPPED_KEY_INVALID             0x110UL
#define CKR_WRAPPED_KEY_LEN_RANGE           0x112UL
#define CKR_WRAPPING_KEY_HANDLE_INVALID     0x113UL
#define CKR_WRAPPING_KEY_TYPE_INCONSISTENT  0x115UL
#define CKR_BUFFER_TOO_SMALL                0x150UL
#define CKR_CRYPTOKI_NOT_INITIALIZED        0x190UL
#define CKR_CRYPTOKI_ALREADY_INITIALIZED    0x191UL

#define CKF_DONT_BLOCK          0x1UL
#define CKF_RW_SESSION          0x2UL
#define CKF_SERIAL_SESSION      0x4UL
#define CKF_TOKEN_INITIALIZED   0x400UL

#define CKU_SO   0UL
#define CKU_USER 1UL

#define CKO_DATA        0UL
#define CKO_PUBLIC_KEY  2UL
#define CKO_SECRET_KEY  4UL
#define CKK_GENERIC_SECRET 0x10UL
#define CKK_AES         0x1FUL

#define CKA_CLASS       0x000UL
#define CKA_TOKEN       0x001UL
#define CKA_PRIVATE     0x002UL
#define CKA_LABEL       0x003UL
#define CKA_VALUE       0x011UL
#define CKA_KEY_TYPE    0x100UL
#define CKA_SENSITIVE   0x103UL
#define CKA_ENCRYPT     0x104UL
#define CKA_DECRYPT     0x105UL
#define CKA_WRAP        0x106UL
#define CKA_UNWRAP      0x107UL
#define CKA_SIGN        0x108UL
#define CKA_VERIFY      0x10AUL
#define CKA_DERIVE      0x10CUL
#define CKA_MODULUS_BITS 0x121UL
#define CKA_VALUE_LEN   0x161UL
#define CKA_EXTRACTABLE 0x162UL
#define CKA_LOCAL       0x163UL
#define CKA_EC_PARAMS   0x180UL
#define CKA_EC_POINT    0x181UL
#define CKA_NOT_A_TYPE  0x7FFFFF00UL    /* below CKA_VENDOR_DEFINED, assigned to nothing */

#define CKM_RSA_PKCS_KEY_PAIR_GEN   0x0000UL
#define CKM_SHA256                  0x0250UL
#define CKM_SHA256_HMAC             0x0251UL
#define CKM_GENERIC_SECRET_KEY_GEN  0x0350UL
#define CKM_EC_KEY_PAIR_GEN         0x1040UL
#define CKM_ECDSA                   0x1041UL
#define CKM_ECDH1_DERIVE            0x1050UL
#define CKM_AES_KEY_GEN             0x1080UL
#define CKM_AES_ECB                 0x1081UL
#define CKM_AES_CBC                 0x1082UL
#define CKM_AES_CBC_PAD             0x1085UL
#define CKM_AES_CTR                 0x1086UL
#define CKM_AES_GCM                 0x1087UL
#define CKM_AES_ECB_ENCRYPT_DATA    0x1104UL
#define CKM_AES_KEY_WRAP            0x2109UL
#define CKM_NOT_A_MECHANISM         0x7FFFFF00UL

#define CKD_NULL        0x1UL
#define CKD_NOT_A_KDF   0x7FFFFF00UL

#define BAD_SLOT        0x0DEADBEEFUL
#define BAD_HANDLE      0x0DEAD0001UL
#define SETUP_FAILED    0x80000000UL     /* ORed into a row's result: its preparation failed */

/* ---- the rows ------------------------------------------------------------------------- */

enum phase { NOINIT, INIT, PUBLIC, USER, SO, FINAL, N_PHASES };
static const char *const PHASE_NAMES[N_PHASES] = {"NOINIT", "INIT", "PUBLIC", "USER", "SO", "FINAL"};

enum {
    NO_RO = 1,          /* row flag: no read-only session may exist during the call */
    CANARY = 2,         /* row flag: runs only when named by --only (see the row) */
};

typedef CK_RV (*case_fn)(CK_ULONG arg);

struct row {
    enum phase phase;
    unsigned flags;
    const char *fn, *what, *suffix;
    CK_RV want;
    case_fn call;
    CK_ULONG arg;
    int line;
};

#define MAX_ROWS 1024
static struct row g_rows[MAX_ROWS];
static int g_nrows;

static void add_row(enum phase phase, unsigned flags, const char *fn, const char *what, const char *suffix,
                    CK_RV want, case_fn call, CK_ULONG arg, int line)
{
    if (g_nrows == MAX_ROWS) {
        fprintf(stderr, "badinput: more than %d rows\n", MAX_ROWS);
        exit(2);
    }
    g_rows[g_nrows++] = (struct row){phase, flags, fn, what, suffix, want, call, arg, line};
}

/* One row: CASE(phase, function, what, expected) { return the call; }. Each row adds
 * itself to g_rows from a constructor, before main() sorts them by phase and line. */
#define CASE_FLAGS(ph, flags, fn, what, want)                                                    \
    static CK_RV fn##__##what(CK_ULONG arg);                                                     \
    __attribute__((constructor)) static void reg_##fn##__##what(void)                          \
    { add_row(ph, flags, #fn, #what, "", want, fn##__##what, 0, __LINE__); }                   \
    static CK_RV fn##__##what(CK_ULONG arg __attribute__((unused)))
#define CASE(ph, fn, what, want) CASE_FLAGS(ph, 0, fn, what, want)

/* A precondition of a row: its failure is reported, marked, as the row's result. */
#define PRE(call) do { CK_RV pre_ = (call); if (pre_ != CKR_OK) return SETUP_FAILED | pre_; } while (0)

/* ---- the module and the fixtures the rows use ----------------------------------------- */

static struct {
    CK_FUNCTION_LIST_PTR fl;
    const char *label, *so_pin, *user_pin;
    CK_SLOT_ID slot, free_slot;
    CK_SESSION_HANDLE keeper, rw, ro, stale_session;
    CK_OBJECT_HANDLE aes, aes_locked, aes_fixed, hmac, hmac_locked, ec_pub, ec_priv, data, token_data,
        stale_object;
    CK_BYTE wrapped[64];
    CK_ULONG wrapped_len;
    CK_BYTE ec_point[128];
    CK_ULONG ec_point_len;
} g;

#define FL (g.fl)

static CK_BBOOL T = 1, F = 0;
static CK_ULONG CLS_DATA = CKO_DATA, CLS_SECRET = CKO_SECRET_KEY, CLS_PUBLIC = CKO_PUBLIC_KEY,
                KT_AES = CKK_AES, KT_GENERIC = CKK_GENERIC_SECRET, LEN16 = 16, LEN32 = 32, BITS1024 = 1024;
static CK_BYTE IV[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static CK_BYTE BLOCK[48] = "forty-eight bytes of text, three AES blocks.....";
static CK_BYTE SIG[64], OUT[256];
static CK_BYTE P256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};   /* prime256v1 */
static CK_BYTE AES_VALUE[32] = "0123456789abcdef0123456789abcdef";
static CK_UTF8CHAR LABEL32[32] = "badinput refused                ";

static CK_MECHANISM M_CBC_PAD = {CKM_AES_CBC_PAD, IV, sizeof IV};
static CK_MECHANISM M_CBC = {CKM_AES_CBC, IV, sizeof IV};
static CK_MECHANISM M_SHA256 = {CKM_SHA256, NULL, 0};
static CK_MECHANISM M_HMAC = {CKM_SHA256_HMAC, NULL, 0};
static CK_MECHANISM M_ECDSA = {CKM_ECDSA, NULL, 0};
static CK_MECHANISM M_AES_GEN = {CKM_AES_KEY_GEN, NULL, 0};
static CK_MECHANISM M_EC_GEN = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
static CK_MECHANISM M_KW = {CKM_AES_KEY_WRAP, NULL, 0};
static CK_MECHANISM M_UNKNOWN = {CKM_NOT_A_MECHANISM, NULL, 0};

static CK_KEY_DERIVATION_STRING_DATA DERIVE_DATA = {BLOCK, 16};
static CK_MECHANISM M_ECB_DATA = {CKM_AES_ECB_ENCRYPT_DATA, &DERIVE_DATA, sizeof DERIVE_DATA};

/* Templates that are right: a row breaks one thing in a copy of them. */
#define N(t) (sizeof(t) / sizeof((t)[0]))
static CK_ATTRIBUTE T_DATA[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1},
                                {CKA_VALUE, (void *)"x", 1}};
static CK_ATTRIBUTE T_AES16[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}};
static CK_ATTRIBUTE T_EC_PUB[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_TOKEN, &F, 1}};
static CK_ATTRIBUTE T_EC_PRIV[] = {{CKA_TOKEN, &F, 1}, {CKA_SIGN, &T, 1}};
static CK_ATTRIBUTE T_UNWRAP[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                                  {CKA_TOKEN, &F, 1}};
static CK_ATTRIBUTE T_DERIVE[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                                  {CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}};
static CK_ATTRIBUTE T_LABEL[] = {{CKA_LABEL, (void *)"renamed", 7}};

/* Scratch outputs: rows that expect a failure still give valid places to write. */
static CK_OBJECT_HANDLE o1, o2;
static CK_ULONG n_out;
static CK_SESSION_HANDLE h_out;

static CK_ULONG *out_len(CK_ULONG n)
{
    n_out = n;
    return &n_out;
}

/* ---- phase NOINIT: before C_Initialize ------------------------------------------------- */

static CK_RV mx_create(CK_VOID_PTR *pp) { *pp = NULL; return CKR_OK; }
static CK_RV mx_other(CK_VOID_PTR p) { (void)p; return CKR_OK; }

CASE(NOINIT, C_GetFunctionList, null_pointer, CKR_ARGUMENTS_BAD) { return FL->C_GetFunctionList(NULL); }
CASE(NOINIT, C_Initialize, reserved_not_null, CKR_ARGUMENTS_BAD)
{
    CK_C_INITIALIZE_ARGS a = {NULL, NULL, NULL, NULL, 0, &a};
    return FL->C_Initialize(&a);
}
CASE(NOINIT, C_Initialize, two_of_four_mutex_functions, CKR_ARGUMENTS_BAD)
{
    CK_C_INITIALIZE_ARGS a = {mx_create, mx_other, NULL, NULL, 0, NULL};
    return FL->C_Initialize(&a);
}
CASE(NOINIT, C_Initialize, three_of_four_mutex_functions, CKR_ARGUMENTS_BAD)
{
    CK_C_INITIALIZE_ARGS a = {mx_create, mx_other, mx_other, NULL, 0, NULL};
    return FL->C_Initialize(&a);
}
CASE(NOINIT, C_Finalize, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED) { return FL->C_Finalize(NULL); }
CASE(NOINIT, C_GetInfo, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_INFO i;
    return FL->C_GetInfo(&i);
}
CASE(NOINIT, C_GetSlotList, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    return FL->C_GetSlotList(0, NULL, out_len(0));
}
CASE(NOINIT, C_GetSlotInfo, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_SLOT_INFO i;
    return FL->C_GetSlotInfo(0, &i);
}
CASE(NOINIT, C_GetTokenInfo, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_TOKEN_INFO i;
    return FL->C_GetTokenInfo(0, &i);
}
CASE(NOINIT, C_GetMechanismList, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    return FL->C_GetMechanismList(0, NULL, out_len(0));
}
CASE(NOINIT, C_GetMechanismInfo, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_MECHANISM_INFO i;
    return FL->C_GetMechanismInfo(0, CKM_SHA256, &i);
}
CASE(NOINIT, C_InitToken, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    return FL->C_InitToken(0, (CK_UTF8CHAR_PTR)"12345678", 8, LABEL32);
}
CASE(NOINIT, C_OpenSession, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    return FL->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h_out);
}
CASE(NOINIT, C_CloseAllSessions, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED) { return FL->C_CloseAllSessions(0); }
CASE(NOINIT, C_WaitForSlotEvent, not_initialized, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_SLOT_ID s;
    return FL->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL);
}

/* ---- phase INIT: initialised; the slot with no token ---------------------------------------- */

CASE(INIT, C_Initialize, already_initialized, CKR_CRYPTOKI_ALREADY_INITIALIZED) { return FL->C_Initialize(NULL); }
CASE(INIT, C_Finalize, reserved_not_null, CKR_ARGUMENTS_BAD) { return FL->C_Finalize(&g); }
CASE(INIT, C_GetInfo, null_info, CKR_ARGUMENTS_BAD) { return FL->C_GetInfo(NULL); }
CASE(INIT, C_GetSlotList, null_count, CKR_ARGUMENTS_BAD) { return FL->C_GetSlotList(0, NULL, NULL); }
CASE(INIT, C_GetSlotList, zero_length_list, CKR_BUFFER_TOO_SMALL)
{
    CK_SLOT_ID s[1];
    return FL->C_GetSlotList(0, s, out_len(0));
}
CASE(INIT, C_GetSlotInfo, null_info, CKR_ARGUMENTS_BAD) { return FL->C_GetSlotInfo(g.free_slot, NULL); }
CASE(INIT, C_GetSlotInfo, invalid_slot, CKR_SLOT_ID_INVALID)
{
    CK_SLOT_INFO i;
    return FL->C_GetSlotInfo(BAD_SLOT, &i);
}
CASE(INIT, C_GetTokenInfo, null_info, CKR_ARGUMENTS_BAD) { return FL->C_GetTokenInfo(g.free_slot, NULL); }
CASE(INIT, C_GetTokenInfo, invalid_slot, CKR_SLOT_ID_INVALID)
{
    CK_TOKEN_INFO i;
    return FL->C_GetTokenInfo(BAD_SLOT, &i);
}
CASE(INIT, C_GetMechanismList, null_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_GetMechanismList(g.free_slot, NULL, NULL);
}
CASE(INIT, C_GetMechanismList, invalid_slot, CKR_SLOT_ID_INVALID)
{
    return FL->C_GetMechanismList(BAD_SLOT, NULL, out_len(0));
}
CASE(INIT, C_GetMechanismList, short_list, CKR_BUFFER_TOO_SMALL)
{
    CK_MECHANISM_TYPE m[1];
    return FL->C_GetMechanismList(g.free_slot, m, out_len(1));
}
CASE(INIT, C_GetMechanismInfo, null_info, CKR_ARGUMENTS_BAD)
{
    return FL->C_GetMechanismInfo(g.free_slot, CKM_SHA256, NULL);
}
CASE(INIT, C_GetMechanismInfo, invalid_slot, CKR_SLOT_ID_INVALID)
{
    CK_MECHANISM_INFO i;
    return FL->C_GetMechanismInfo(BAD_SLOT, CKM_SHA256, &i);
}
CASE(INIT, C_GetMechanismInfo, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    CK_MECHANISM_INFO i;
    return FL->C_GetMechanismInfo(g.free_slot, CKM_NOT_A_MECHANISM, &i);
}
CASE(INIT, C_InitToken, invalid_slot, CKR_SLOT_ID_INVALID)
{
    return FL->C_InitToken(BAD_SLOT, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin), LABEL32);
}
CASE(INIT, C_InitToken, null_label, CKR_ARGUMENTS_BAD)
{
    return FL->C_InitToken(g.free_slot, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin), NULL);
}
CASE(INIT, C_InitToken, null_pin_with_length, CKR_ARGUMENTS_BAD)
{
    return FL->C_InitToken(g.free_slot, NULL, 8, LABEL32);
}
CASE(INIT, C_InitToken, short_pin, CKR_PIN_LEN_RANGE)
{
    return FL->C_InitToken(g.free_slot, (CK_UTF8CHAR_PTR)"123", 3, LABEL32);
}
CASE(INIT, C_OpenSession, invalid_slot, CKR_SLOT_ID_INVALID)
{
    return FL->C_OpenSession(BAD_SLOT, CKF_SERIAL_SESSION, NULL, NULL, &h_out);
}
CASE(INIT, C_OpenSession, uninitialized_token, CKR_TOKEN_NOT_RECOGNIZED)
{
    return FL->C_OpenSession(g.free_slot, CKF_SERIAL_SESSION, NULL, NULL, &h_out);
}
CASE(INIT, C_CloseAllSessions, invalid_slot, CKR_SLOT_ID_INVALID) { return FL->C_CloseAllSessions(BAD_SLOT); }
/* The caller's own bug: a value length longer than its buffer. The module must copy what
 * the caller claims, so this reads past the caller's heap block, inside the shim: it
 * shows that valgrind sees reads made by the module (tests/test_badinput.py expects an
 * "Invalid read" for it, and none for every other row). */
CASE_FLAGS(INIT, CANARY, C_CreateObject, canary_value_longer_than_its_buffer, CKR_SESSION_HANDLE_INVALID)
{
    CK_BYTE *value = malloc(8);
    memset(value, 'v', 8);
    CK_ATTRIBUTE t[] = {{CKA_LABEL, value, 64}};
    CK_RV rv = FL->C_CreateObject(BAD_HANDLE, t, N(t), &o1);
    free(value);
    return rv;
}
CASE(INIT, C_WaitForSlotEvent, dont_block, CKR_FUNCTION_NOT_SUPPORTED)
{
    CK_SLOT_ID s;
    return FL->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, NULL);
}
CASE(INIT, C_WaitForSlotEvent, null_slot, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL);
}
CASE(INIT, C_WaitForSlotEvent, reserved_not_null, CKR_FUNCTION_NOT_SUPPORTED)
{
    CK_SLOT_ID s;
    return FL->C_WaitForSlotEvent(CKF_DONT_BLOCK, &s, &g);
}
/* ---- phase PUBLIC: a token, nobody logged in ---------------------------------------------- */

CASE(PUBLIC, C_InitToken, session_exists, CKR_SESSION_EXISTS)
{
    return FL->C_InitToken(g.slot, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin), LABEL32);
}
CASE(PUBLIC, C_OpenSession, null_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_OpenSession(g.slot, CKF_SERIAL_SESSION, NULL, NULL, NULL);
}
CASE(PUBLIC, C_OpenSession, not_serial, CKR_SESSION_PARALLEL_NOT_SUPPORTED)
{
    return FL->C_OpenSession(g.slot, CKF_RW_SESSION, NULL, NULL, &h_out);
}
CASE(PUBLIC, C_Login, wrong_user_pin, CKR_PIN_INCORRECT)
{
    return FL->C_Login(g.rw, CKU_USER, (CK_UTF8CHAR_PTR)"wrong-pin", 9);
}
CASE(PUBLIC, C_Login, invalid_user_type, CKR_USER_TYPE_INVALID)
{
    return FL->C_Login(g.rw, 7, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin));
}
CASE(PUBLIC, C_Login, null_pin_with_length, CKR_ARGUMENTS_BAD) { return FL->C_Login(g.rw, CKU_USER, NULL, 4); }
CASE(PUBLIC, C_Login, so_while_read_only_session, CKR_SESSION_READ_ONLY_EXISTS)
{
    return FL->C_Login(g.rw, CKU_SO, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin));
}
CASE_FLAGS(PUBLIC, NO_RO, C_Login, wrong_so_pin, CKR_PIN_INCORRECT)
{
    return FL->C_Login(g.rw, CKU_SO, (CK_UTF8CHAR_PTR)"wrong-so-pin", 12);
}
CASE(PUBLIC, C_Logout, not_logged_in, CKR_USER_NOT_LOGGED_IN) { return FL->C_Logout(g.rw); }
CASE(PUBLIC, C_InitPIN, not_so, CKR_USER_NOT_LOGGED_IN)
{
    return FL->C_InitPIN(g.rw, (CK_UTF8CHAR_PTR)"5678", 4);
}
CASE(PUBLIC, C_SetPIN, read_only_session, CKR_SESSION_READ_ONLY)
{
    return FL->C_SetPIN(g.ro, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin), (CK_UTF8CHAR_PTR)"5678", 4);
}
CASE(PUBLIC, C_SetPIN, wrong_old_pin, CKR_PIN_INCORRECT)
{
    return FL->C_SetPIN(g.rw, (CK_UTF8CHAR_PTR)"wrong-pin", 9, (CK_UTF8CHAR_PTR)"5678", 4);
}
CASE(PUBLIC, C_CreateObject, private_object_not_logged_in, CKR_USER_NOT_LOGGED_IN)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(PUBLIC, C_CreateObject, public_token_object_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &T, 1}, {CKA_PRIVATE, &F, 1}};
    return FL->C_CreateObject(g.ro, t, N(t), &o1);
}
CASE(PUBLIC, C_GenerateKey, private_key_not_logged_in, CKR_USER_NOT_LOGGED_IN)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}

/* ---- phase USER: the user logged in ------------------------------------------------------- */

/* Session and login state */
CASE_FLAGS(USER, NO_RO, C_Login, user_already_logged_in, CKR_USER_ALREADY_LOGGED_IN)
{
    return FL->C_Login(g.rw, CKU_USER, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin));
}
CASE_FLAGS(USER, NO_RO, C_Login, so_while_user_logged_in, CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
{
    return FL->C_Login(g.rw, CKU_SO, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin));
}
CASE(USER, C_InitPIN, user_not_so, CKR_USER_NOT_LOGGED_IN)
{
    return FL->C_InitPIN(g.rw, (CK_UTF8CHAR_PTR)"5678", 4);
}
CASE(USER, C_SetPIN, null_new_pin_with_length, CKR_ARGUMENTS_BAD)
{
    return FL->C_SetPIN(g.rw, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin), NULL, 4);
}
CASE(USER, C_SetPIN, null_old_pin_with_length, CKR_ARGUMENTS_BAD)
{
    return FL->C_SetPIN(g.rw, NULL, 4, (CK_UTF8CHAR_PTR)"5678", 4);
}
CASE(USER, C_SetPIN, short_new_pin, CKR_PIN_LEN_RANGE)
{
    return FL->C_SetPIN(g.rw, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin), (CK_UTF8CHAR_PTR)"12", 2);
}
CASE(USER, C_GetSessionInfo, null_info, CKR_ARGUMENTS_BAD) { return FL->C_GetSessionInfo(g.rw, NULL); }
CASE(USER, C_GetOperationState, length_query, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_GetOperationState(g.rw, NULL, out_len(0));
}
CASE(USER, C_GetOperationState, null_length, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_GetOperationState(g.rw, OUT, NULL);
}
CASE(USER, C_SetOperationState, some_state, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SetOperationState(g.rw, OUT, 16, 0, 0);
}
CASE(USER, C_SetOperationState, null_state_with_length, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SetOperationState(g.rw, NULL, 16, 0, 0);
}

/* Objects */
CASE(USER, C_CreateObject, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_CreateObject(g.rw, NULL, 3, &o1);
}
CASE(USER, C_CreateObject, null_handle, CKR_ARGUMENTS_BAD) { return FL->C_CreateObject(g.rw, T_DATA, N(T_DATA), NULL); }
/* A template larger than the shim's on-stack copy. */
CASE(USER, C_CreateObject, long_template_unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    static CK_BYTE long_label[3000];
    memset(long_label, 'l', sizeof long_label);
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1},
                        {CKA_LABEL, long_label, sizeof long_label}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, no_class, CKR_TEMPLATE_INCOMPLETE)
{
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &F, 1}, {CKA_VALUE, (void *)"x", 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, class_of_four_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, 4}, {CKA_TOKEN, &F, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, bool_of_two_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_BYTE two[2] = {0, 0};
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, two, 2}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, bool_of_zero_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 0}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, null_value_with_length, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1}, {CKA_LABEL, NULL, 5}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, duplicated_attribute, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1}, {CKA_LABEL, (void *)"a", 1},
                        {CKA_LABEL, (void *)"b", 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, unknown_class, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ULONG cls = 0x7FFFFF00UL;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &F, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, unknown_key_type, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ULONG kt = 0x7FFFFF00UL;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &kt, sizeof kt},
                        {CKA_TOKEN, &F, 1}, {CKA_VALUE, AES_VALUE, 16}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, read_only_attribute, CKR_ATTRIBUTE_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_TOKEN, &F, 1}, {CKA_VALUE, AES_VALUE, 16}, {CKA_LOCAL, &T, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, aes_value_of_15_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_TOKEN, &F, 1}, {CKA_VALUE, AES_VALUE, 15}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, secret_key_without_value, CKR_TEMPLATE_INCOMPLETE)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_TOKEN, &F, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
CASE(USER, C_CreateObject, token_object_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &T, 1}};
    return FL->C_CreateObject(g.ro, t, N(t), &o1);
}
CASE(USER, C_CopyObject, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_CopyObject(g.rw, g.data, NULL, 1, &o1);
}
CASE(USER, C_CopyObject, null_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_CopyObject(g.rw, g.data, T_LABEL, N(T_LABEL), NULL);
}
CASE(USER, C_CopyObject, unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_CopyObject(g.rw, g.data, t, N(t), &o1);
}
CASE(USER, C_CopyObject, bool_of_four_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ULONG four = 0;
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &four, 4}};
    return FL->C_CopyObject(g.rw, g.data, t, N(t), &o1);
}
CASE(USER, C_CopyObject, duplicated_attribute, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)"a", 1}, {CKA_LABEL, (void *)"b", 1}};
    return FL->C_CopyObject(g.rw, g.data, t, N(t), &o1);
}
CASE(USER, C_CopyObject, class_changed, CKR_ATTRIBUTE_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}};
    return FL->C_CopyObject(g.rw, g.data, t, N(t), &o1);
}
CASE(USER, C_CopyObject, to_token_in_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &T, 1}};
    return FL->C_CopyObject(g.ro, g.data, t, N(t), &o1);
}
CASE(USER, C_DestroyObject, token_object_read_only_session, CKR_SESSION_READ_ONLY)
{
    return FL->C_DestroyObject(g.ro, g.token_data);
}
CASE(USER, C_GetObjectSize, null_size, CKR_ARGUMENTS_BAD) { return FL->C_GetObjectSize(g.rw, g.data, NULL); }
CASE(USER, C_GetAttributeValue, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_GetAttributeValue(g.rw, g.data, NULL, 1);
}
CASE(USER, C_GetAttributeValue, unknown_type, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ULONG v;
    CK_ATTRIBUTE t[] = {{CKA_NOT_A_TYPE, &v, sizeof v}};
    return FL->C_GetAttributeValue(g.rw, g.data, t, N(t));
}
CASE(USER, C_GetAttributeValue, short_buffer, CKR_BUFFER_TOO_SMALL)
{
    CK_ULONG v;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &v, 4}};
    return FL->C_GetAttributeValue(g.rw, g.data, t, N(t));
}
/* More than the shim's 16 on-stack entries, and more than a kept answer holds. */
CASE(USER, C_GetAttributeValue, forty_attributes_one_unknown, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ULONG v[40];
    CK_ATTRIBUTE t[40];
    for (int i = 0; i < 40; i++)
        t[i] = (CK_ATTRIBUTE){i == 39 ? CKA_NOT_A_TYPE : CKA_CLASS, &v[i], sizeof v[i]};
    return FL->C_GetAttributeValue(g.rw, g.data, t, N(t));
}
/* The second call is answered from the first one's kept answer (csrc/shim.c). */
CASE(USER, C_GetAttributeValue, short_buffer_after_length_query, CKR_BUFFER_TOO_SMALL)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE, NULL, 0}};
    PRE(FL->C_GetAttributeValue(g.rw, g.aes, t, N(t)));
    t[0] = (CK_ATTRIBUTE){CKA_VALUE, OUT, 16};
    return FL->C_GetAttributeValue(g.rw, g.aes, t, N(t));
}
CASE(USER, C_GetAttributeValue, sensitive_value, CKR_ATTRIBUTE_SENSITIVE)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE, OUT, sizeof OUT}};
    return FL->C_GetAttributeValue(g.rw, g.aes_fixed, t, N(t));
}
CASE(USER, C_SetAttributeValue, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_SetAttributeValue(g.rw, g.data, NULL, 1);
}
CASE(USER, C_SetAttributeValue, unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_SetAttributeValue(g.rw, g.data, t, N(t));
}
CASE(USER, C_SetAttributeValue, bool_of_zero_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_ENCRYPT, &T, 0}};
    return FL->C_SetAttributeValue(g.rw, g.aes, t, N(t));
}
CASE(USER, C_SetAttributeValue, null_value_with_length, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, NULL, 5}};
    return FL->C_SetAttributeValue(g.rw, g.data, t, N(t));
}
CASE(USER, C_SetAttributeValue, duplicated_attribute, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_LABEL, (void *)"a", 1}, {CKA_LABEL, (void *)"b", 1}};
    return FL->C_SetAttributeValue(g.rw, g.data, t, N(t));
}
CASE(USER, C_SetAttributeValue, class_changed, CKR_ATTRIBUTE_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}};
    return FL->C_SetAttributeValue(g.rw, g.data, t, N(t));
}
CASE(USER, C_SetAttributeValue, sensitive_back_to_false, CKR_ATTRIBUTE_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_SENSITIVE, &F, 1}};
    return FL->C_SetAttributeValue(g.rw, g.aes_fixed, t, N(t));
}
CASE(USER, C_SetAttributeValue, token_object_read_only_session, CKR_SESSION_READ_ONLY)
{
    return FL->C_SetAttributeValue(g.ro, g.token_data, T_LABEL, N(T_LABEL));
}
CASE(USER, C_FindObjectsInit, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_FindObjectsInit(g.rw, NULL, 1);
}
CASE(USER, C_FindObjectsInit, operation_active, CKR_OPERATION_ACTIVE)
{
    PRE(FL->C_FindObjectsInit(g.rw, NULL, 0));
    return FL->C_FindObjectsInit(g.rw, NULL, 0);
}
CASE(USER, C_FindObjects, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    CK_OBJECT_HANDLE h[4];
    return FL->C_FindObjects(g.rw, h, 4, out_len(0));
}
CASE(USER, C_FindObjects, null_handles_with_count, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_FindObjectsInit(g.rw, NULL, 0));
    return FL->C_FindObjects(g.rw, NULL, 4, out_len(0));
}
CASE(USER, C_FindObjects, null_count, CKR_ARGUMENTS_BAD)
{
    CK_OBJECT_HANDLE h[4];
    PRE(FL->C_FindObjectsInit(g.rw, NULL, 0));
    return FL->C_FindObjects(g.rw, h, 4, NULL);
}
CASE(USER, C_FindObjectsFinal, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_FindObjectsFinal(g.rw); }

/* Encryption */
CASE(USER, C_EncryptInit, null_mechanism, CKR_ARGUMENTS_BAD) { return FL->C_EncryptInit(g.rw, NULL, g.aes); }
CASE(USER, C_EncryptInit, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_EncryptInit(g.rw, &M_UNKNOWN, g.aes);
}
CASE(USER, C_EncryptInit, digest_mechanism, CKR_MECHANISM_INVALID) { return FL->C_EncryptInit(g.rw, &M_SHA256, g.aes); }
CASE(USER, C_EncryptInit, cbc_without_iv, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_CBC_PAD, NULL, 0};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, cbc_iv_of_15_bytes, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_CBC_PAD, IV, 15};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, cbc_null_iv_with_length, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_CBC_PAD, NULL, 16};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, ecb_with_parameter, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_ECB, IV, sizeof IV};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, gcm_parameter_length_wrong, CKR_MECHANISM_PARAM_INVALID)
{
    CK_GCM_PARAMS p = {IV, 12, 96, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p - 8};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, gcm_tag_of_129_bits, CKR_MECHANISM_PARAM_INVALID)
{
    CK_GCM_PARAMS p = {IV, 12, 96, NULL, 0, 129};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, gcm_iv_of_zero_bytes, CKR_MECHANISM_PARAM_INVALID)
{
    CK_GCM_PARAMS p = {IV, 0, 0, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, gcm_null_iv_with_length, CKR_MECHANISM_PARAM_INVALID)
{
    CK_GCM_PARAMS p = {NULL, 12, 96, NULL, 0, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, gcm_null_aad_with_length, CKR_MECHANISM_PARAM_INVALID)
{
    CK_GCM_PARAMS p = {IV, 12, 96, NULL, 20, 128};
    CK_MECHANISM m = {CKM_AES_GCM, &p, sizeof p};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, ctr_counter_of_zero_bits, CKR_MECHANISM_PARAM_INVALID)
{
    CK_AES_CTR_PARAMS p = {0, {0}};
    CK_MECHANISM m = {CKM_AES_CTR, &p, sizeof p};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, ctr_counter_of_129_bits, CKR_MECHANISM_PARAM_INVALID)
{
    CK_AES_CTR_PARAMS p = {129, {0}};
    CK_MECHANISM m = {CKM_AES_CTR, &p, sizeof p};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, ctr_parameter_length_wrong, CKR_MECHANISM_PARAM_INVALID)
{
    CK_AES_CTR_PARAMS p = {32, {0}};
    CK_MECHANISM m = {CKM_AES_CTR, &p, 16};
    return FL->C_EncryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_EncryptInit, key_without_encrypt, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes_locked);
}
CASE(USER, C_EncryptInit, hmac_key_for_aes, CKR_KEY_TYPE_INCONSISTENT)
{
    return FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.hmac);
}
CASE(USER, C_EncryptInit, data_object_as_key, CKR_KEY_HANDLE_INVALID)
{
    return FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.data);
}
CASE(USER, C_EncryptInit, operation_active, CKR_OPERATION_ACTIVE)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes);
}
CASE(USER, C_Encrypt, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_Encrypt(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_Encrypt, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_Encrypt(g.rw, NULL, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_Encrypt, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_Encrypt(g.rw, BLOCK, 16, OUT, NULL);
}
CASE(USER, C_Encrypt, short_output, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_Encrypt(g.rw, BLOCK, 16, OUT, out_len(16));
}
CASE(USER, C_Encrypt, cbc_data_of_15_bytes, CKR_DATA_LEN_RANGE)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_Encrypt(g.rw, BLOCK, 15, OUT, out_len(sizeof OUT));
}
CASE(USER, C_EncryptUpdate, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_EncryptUpdate(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_EncryptUpdate, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_EncryptUpdate(g.rw, NULL, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_EncryptUpdate, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_EncryptUpdate(g.rw, BLOCK, 32, OUT, NULL);
}
CASE(USER, C_EncryptFinal, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_EncryptFinal(g.rw, OUT, out_len(sizeof OUT));
}
CASE(USER, C_EncryptFinal, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes));
    return FL->C_EncryptFinal(g.rw, OUT, NULL);
}
CASE(USER, C_EncryptFinal, cbc_partial_block, CKR_DATA_LEN_RANGE)
{
    PRE(FL->C_EncryptInit(g.rw, &M_CBC, g.aes));
    PRE(FL->C_EncryptUpdate(g.rw, BLOCK, 15, OUT, out_len(sizeof OUT)));
    return FL->C_EncryptFinal(g.rw, OUT, out_len(sizeof OUT));
}

/* Decryption */
CASE(USER, C_DecryptInit, null_mechanism, CKR_ARGUMENTS_BAD) { return FL->C_DecryptInit(g.rw, NULL, g.aes); }
CASE(USER, C_DecryptInit, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_DecryptInit(g.rw, &M_UNKNOWN, g.aes);
}
CASE(USER, C_DecryptInit, cbc_iv_of_15_bytes, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_CBC, IV, 15};
    return FL->C_DecryptInit(g.rw, &m, g.aes);
}
CASE(USER, C_DecryptInit, key_without_decrypt, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_DecryptInit(g.rw, &M_CBC_PAD, g.aes_locked);
}
CASE(USER, C_DecryptInit, hmac_key_for_aes, CKR_KEY_TYPE_INCONSISTENT)
{
    return FL->C_DecryptInit(g.rw, &M_CBC_PAD, g.hmac);
}
CASE(USER, C_DecryptInit, operation_active, CKR_OPERATION_ACTIVE)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_DecryptInit(g.rw, &M_CBC, g.aes);
}
CASE(USER, C_Decrypt, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_Decrypt(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_Decrypt, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_Decrypt(g.rw, NULL, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_Decrypt, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_Decrypt(g.rw, BLOCK, 16, OUT, NULL);
}
CASE(USER, C_Decrypt, short_output, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_Decrypt(g.rw, BLOCK, 32, OUT, out_len(8));
}
CASE(USER, C_Decrypt, cbc_data_of_17_bytes, CKR_ENCRYPTED_DATA_LEN_RANGE)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_Decrypt(g.rw, BLOCK, 17, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DecryptUpdate, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_DecryptUpdate(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DecryptUpdate, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_DecryptUpdate(g.rw, NULL, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DecryptUpdate, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_DecryptUpdate(g.rw, BLOCK, 32, OUT, NULL);
}
CASE(USER, C_DecryptFinal, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_DecryptFinal(g.rw, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DecryptFinal, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    return FL->C_DecryptFinal(g.rw, OUT, NULL);
}
CASE(USER, C_DecryptFinal, cbc_partial_block, CKR_ENCRYPTED_DATA_LEN_RANGE)
{
    PRE(FL->C_DecryptInit(g.rw, &M_CBC, g.aes));
    PRE(FL->C_DecryptUpdate(g.rw, BLOCK, 15, OUT, out_len(sizeof OUT)));
    return FL->C_DecryptFinal(g.rw, OUT, out_len(sizeof OUT));
}

/* Digests */
CASE(USER, C_DigestInit, null_mechanism, CKR_ARGUMENTS_BAD) { return FL->C_DigestInit(g.rw, NULL); }
CASE(USER, C_DigestInit, unknown_mechanism, CKR_MECHANISM_INVALID) { return FL->C_DigestInit(g.rw, &M_UNKNOWN); }
CASE(USER, C_DigestInit, cipher_mechanism, CKR_MECHANISM_INVALID) { return FL->C_DigestInit(g.rw, &M_CBC); }
CASE(USER, C_DigestInit, sha256_with_parameter, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_SHA256, IV, sizeof IV};
    return FL->C_DigestInit(g.rw, &m);
}
CASE(USER, C_DigestInit, operation_active, CKR_OPERATION_ACTIVE)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_DigestInit(g.rw, &M_SHA256);
}
CASE(USER, C_Digest, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_Digest(g.rw, BLOCK, 3, OUT, out_len(sizeof OUT));
}
CASE(USER, C_Digest, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_Digest(g.rw, NULL, 3, OUT, out_len(sizeof OUT));
}
CASE(USER, C_Digest, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_Digest(g.rw, BLOCK, 3, OUT, NULL);
}
CASE(USER, C_Digest, short_output, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_Digest(g.rw, BLOCK, 3, OUT, out_len(31));
}
CASE(USER, C_DigestUpdate, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_DigestUpdate(g.rw, BLOCK, 3); }
CASE(USER, C_DigestUpdate, null_part_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_DigestUpdate(g.rw, NULL, 3);
}
CASE(USER, C_DigestKey, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_DigestKey(g.rw, g.aes); }
CASE(USER, C_DigestKey, data_object_as_key, CKR_KEY_HANDLE_INVALID)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_DigestKey(g.rw, g.data);
}
CASE(USER, C_DigestKey, private_key, CKR_KEY_INDIGESTIBLE)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_DigestKey(g.rw, g.ec_priv);
}
CASE(USER, C_DigestFinal, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_DigestFinal(g.rw, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DigestFinal, null_output_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_DigestFinal(g.rw, OUT, NULL);
}
CASE(USER, C_DigestFinal, short_output, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    PRE(FL->C_DigestUpdate(g.rw, BLOCK, 3));
    return FL->C_DigestFinal(g.rw, OUT, out_len(16));
}

/* Signatures and MACs */
CASE(USER, C_SignInit, null_mechanism, CKR_ARGUMENTS_BAD) { return FL->C_SignInit(g.rw, NULL, g.hmac); }
CASE(USER, C_SignInit, unknown_mechanism, CKR_MECHANISM_INVALID) { return FL->C_SignInit(g.rw, &M_UNKNOWN, g.hmac); }
CASE(USER, C_SignInit, hmac_with_parameter, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_SHA256_HMAC, IV, sizeof IV};
    return FL->C_SignInit(g.rw, &m, g.hmac);
}
CASE(USER, C_SignInit, key_without_sign, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_SignInit(g.rw, &M_HMAC, g.hmac_locked);
}
CASE(USER, C_SignInit, aes_key_for_ecdsa, CKR_KEY_TYPE_INCONSISTENT) { return FL->C_SignInit(g.rw, &M_ECDSA, g.aes); }
CASE(USER, C_SignInit, data_object_as_key, CKR_KEY_HANDLE_INVALID) { return FL->C_SignInit(g.rw, &M_HMAC, g.data); }
CASE(USER, C_SignInit, operation_active, CKR_OPERATION_ACTIVE)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_SignInit(g.rw, &M_HMAC, g.hmac);
}
CASE(USER, C_Sign, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_Sign(g.rw, BLOCK, 16, SIG, out_len(sizeof SIG));
}
CASE(USER, C_Sign, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Sign(g.rw, NULL, 16, SIG, out_len(sizeof SIG));
}
CASE(USER, C_Sign, null_signature_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Sign(g.rw, BLOCK, 16, SIG, NULL);
}
CASE(USER, C_Sign, short_output, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Sign(g.rw, BLOCK, 16, SIG, out_len(31));
}
CASE(USER, C_SignUpdate, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_SignUpdate(g.rw, BLOCK, 16); }
CASE(USER, C_SignUpdate, null_part_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_SignUpdate(g.rw, NULL, 16);
}
CASE(USER, C_SignFinal, no_operation, CKR_OPERATION_NOT_INITIALIZED)
{
    return FL->C_SignFinal(g.rw, SIG, out_len(sizeof SIG));
}
CASE(USER, C_SignFinal, null_signature_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    PRE(FL->C_SignUpdate(g.rw, BLOCK, 16));
    return FL->C_SignFinal(g.rw, SIG, NULL);
}
CASE(USER, C_SignFinal, short_output, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_SignInit(g.rw, &M_HMAC, g.hmac));
    PRE(FL->C_SignUpdate(g.rw, BLOCK, 16));
    return FL->C_SignFinal(g.rw, SIG, out_len(8));
}
CASE(USER, C_VerifyInit, null_mechanism, CKR_ARGUMENTS_BAD) { return FL->C_VerifyInit(g.rw, NULL, g.hmac); }
CASE(USER, C_VerifyInit, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_VerifyInit(g.rw, &M_UNKNOWN, g.hmac);
}
CASE(USER, C_VerifyInit, key_without_verify, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac_locked);
}
CASE(USER, C_VerifyInit, aes_key_for_ecdsa, CKR_KEY_TYPE_INCONSISTENT)
{
    return FL->C_VerifyInit(g.rw, &M_ECDSA, g.aes);
}
CASE(USER, C_VerifyInit, operation_active, CKR_OPERATION_ACTIVE)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac);
}
CASE(USER, C_Verify, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_Verify(g.rw, BLOCK, 16, SIG, 32); }
CASE(USER, C_Verify, null_data_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Verify(g.rw, NULL, 16, SIG, 32);
}
CASE(USER, C_Verify, null_signature_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Verify(g.rw, BLOCK, 16, NULL, 32);
}
CASE(USER, C_Verify, signature_of_31_bytes, CKR_SIGNATURE_LEN_RANGE)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Verify(g.rw, BLOCK, 16, SIG, 31);
}
CASE(USER, C_Verify, wrong_signature, CKR_SIGNATURE_INVALID)
{
    CK_BYTE zeros[32] = {0};
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_Verify(g.rw, BLOCK, 16, zeros, sizeof zeros);
}
CASE(USER, C_VerifyUpdate, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_VerifyUpdate(g.rw, BLOCK, 16); }
CASE(USER, C_VerifyUpdate, null_part_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    return FL->C_VerifyUpdate(g.rw, NULL, 16);
}
CASE(USER, C_VerifyFinal, no_operation, CKR_OPERATION_NOT_INITIALIZED) { return FL->C_VerifyFinal(g.rw, SIG, 32); }
CASE(USER, C_VerifyFinal, null_signature_with_length, CKR_ARGUMENTS_BAD)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    PRE(FL->C_VerifyUpdate(g.rw, BLOCK, 16));
    return FL->C_VerifyFinal(g.rw, NULL, 32);
}
CASE(USER, C_VerifyFinal, signature_of_31_bytes, CKR_SIGNATURE_LEN_RANGE)
{
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    PRE(FL->C_VerifyUpdate(g.rw, BLOCK, 16));
    return FL->C_VerifyFinal(g.rw, SIG, 31);
}
CASE(USER, C_VerifyFinal, wrong_signature, CKR_SIGNATURE_INVALID)
{
    CK_BYTE zeros[32] = {0};
    PRE(FL->C_VerifyInit(g.rw, &M_HMAC, g.hmac));
    PRE(FL->C_VerifyUpdate(g.rw, BLOCK, 16));
    return FL->C_VerifyFinal(g.rw, zeros, sizeof zeros);
}

/* Recovery and dual-function operations: not supported whatever the input (README). */
CASE(USER, C_SignRecoverInit, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignRecoverInit(g.rw, &M_ECDSA, g.ec_priv);
}
CASE(USER, C_SignRecoverInit, null_mechanism, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignRecoverInit(g.rw, NULL, g.ec_priv);
}
CASE(USER, C_SignRecover, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignRecover(g.rw, BLOCK, 16, SIG, out_len(sizeof SIG));
}
CASE(USER, C_SignRecover, null_pointers, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignRecover(g.rw, NULL, 16, NULL, NULL);
}
CASE(USER, C_VerifyRecoverInit, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_VerifyRecoverInit(g.rw, &M_ECDSA, g.ec_pub);
}
CASE(USER, C_VerifyRecoverInit, null_mechanism, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_VerifyRecoverInit(g.rw, NULL, g.ec_pub);
}
CASE(USER, C_VerifyRecover, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_VerifyRecover(g.rw, SIG, 64, OUT, out_len(sizeof OUT));
}
CASE(USER, C_VerifyRecover, null_pointers, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_VerifyRecover(g.rw, NULL, 64, NULL, NULL);
}
CASE(USER, C_DigestEncryptUpdate, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DigestEncryptUpdate(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DigestEncryptUpdate, null_pointers, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DigestEncryptUpdate(g.rw, NULL, 16, NULL, NULL);
}
CASE(USER, C_DecryptDigestUpdate, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DecryptDigestUpdate(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DecryptDigestUpdate, null_pointers, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DecryptDigestUpdate(g.rw, NULL, 16, NULL, NULL);
}
CASE(USER, C_SignEncryptUpdate, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignEncryptUpdate(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_SignEncryptUpdate, null_pointers, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignEncryptUpdate(g.rw, NULL, 16, NULL, NULL);
}
CASE(USER, C_DecryptVerifyUpdate, valid_arguments, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DecryptVerifyUpdate(g.rw, BLOCK, 16, OUT, out_len(sizeof OUT));
}
CASE(USER, C_DecryptVerifyUpdate, null_pointers, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DecryptVerifyUpdate(g.rw, NULL, 16, NULL, NULL);
}

/* Key generation */
CASE(USER, C_GenerateKey, null_mechanism, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKey(g.rw, NULL, T_AES16, N(T_AES16), &o1);
}
CASE(USER, C_GenerateKey, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, NULL, 2, &o1);
}
CASE(USER, C_GenerateKey, null_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, T_AES16, N(T_AES16), NULL);
}
CASE(USER, C_GenerateKey, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_GenerateKey(g.rw, &M_UNKNOWN, T_AES16, N(T_AES16), &o1);
}
CASE(USER, C_GenerateKey, digest_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_GenerateKey(g.rw, &M_SHA256, T_AES16, N(T_AES16), &o1);
}
CASE(USER, C_GenerateKey, keygen_with_parameter, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, IV, sizeof IV};
    return FL->C_GenerateKey(g.rw, &m, T_AES16, N(T_AES16), &o1);
}
CASE(USER, C_GenerateKey, aes_without_value_len, CKR_TEMPLATE_INCOMPLETE)
{
    CK_ATTRIBUTE t[] = {{CKA_TOKEN, &F, 1}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, value_len_of_four_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, 4}, {CKA_TOKEN, &F, 1}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, duplicated_attribute, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1},
                        {CKA_VALUE_LEN, &LEN32, sizeof LEN32}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, class_contradicts_mechanism, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1},
                        {CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, key_type_contradicts_mechanism, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1},
                        {CKA_KEY_TYPE, &KT_GENERIC, sizeof KT_GENERIC}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, read_only_attribute, CKR_ATTRIBUTE_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}, {CKA_LOCAL, &T, 1}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, null_value_with_length, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}, {CKA_LABEL, NULL, 5}};
    return FL->C_GenerateKey(g.rw, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKey, token_key_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &T, 1}};
    return FL->C_GenerateKey(g.ro, &M_AES_GEN, t, N(t), &o1);
}
CASE(USER, C_GenerateKeyPair, null_mechanism, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKeyPair(g.rw, NULL, T_EC_PUB, N(T_EC_PUB), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, null_public_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, NULL, 2, T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, null_private_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), NULL, 2, &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, null_public_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), T_EC_PRIV, N(T_EC_PRIV), NULL, &o2);
}
CASE(USER, C_GenerateKeyPair, null_private_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), T_EC_PRIV, N(T_EC_PRIV), &o1, NULL);
}
CASE(USER, C_GenerateKeyPair, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_GenerateKeyPair(g.rw, &M_UNKNOWN, T_EC_PUB, N(T_EC_PUB), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, secret_key_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_GenerateKeyPair(g.rw, &M_AES_GEN, T_EC_PUB, N(T_EC_PUB), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, ec_without_params, CKR_TEMPLATE_INCOMPLETE)
{
    CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &F, 1}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, pub, N(pub), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, rsa_without_modulus_bits, CKR_TEMPLATE_INCOMPLETE)
{
    CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &F, 1}};
    return FL->C_GenerateKeyPair(g.rw, &m, pub, N(pub), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, rsa_modulus_bits_of_four_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &F, 1}, {CKA_MODULUS_BITS, &BITS1024, 4}};
    return FL->C_GenerateKeyPair(g.rw, &m, pub, N(pub), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, unknown_attribute_in_public, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_TOKEN, &F, 1}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, pub, N(pub), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, unknown_attribute_in_private, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &F, 1}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), priv, N(priv), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, duplicated_attribute_in_public, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_TOKEN, &F, 1}, {CKA_TOKEN, &T, 1}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, pub, N(pub), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, duplicated_attribute_in_private, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &F, 1}, {CKA_SIGN, &T, 1}, {CKA_SIGN, &F, 1}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), priv, N(priv), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, public_class_contradicts, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_TOKEN, &F, 1},
                          {CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, pub, N(pub), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, private_class_contradicts, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &F, 1}, {CKA_CLASS, &CLS_PUBLIC, sizeof CLS_PUBLIC}};
    return FL->C_GenerateKeyPair(g.rw, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), priv, N(priv), &o1, &o2);
}
CASE(USER, C_GenerateKeyPair, token_pair_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_TOKEN, &T, 1}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &T, 1}};
    return FL->C_GenerateKeyPair(g.ro, &M_EC_GEN, pub, N(pub), priv, N(priv), &o1, &o2);
}

/* Wrapping and unwrapping */
CASE(USER, C_WrapKey, null_mechanism, CKR_ARGUMENTS_BAD)
{
    return FL->C_WrapKey(g.rw, NULL, g.aes, g.aes_locked, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, null_length, CKR_ARGUMENTS_BAD)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.aes, g.aes_locked, OUT, NULL);
}
CASE(USER, C_WrapKey, short_output, CKR_BUFFER_TOO_SMALL)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.aes, g.aes_locked, OUT, out_len(8));
}
CASE(USER, C_WrapKey, short_output_after_length_query, CKR_BUFFER_TOO_SMALL)
{
    PRE(FL->C_WrapKey(g.rw, &M_KW, g.aes, g.aes_locked, NULL, out_len(0)));
    return FL->C_WrapKey(g.rw, &M_KW, g.aes, g.aes_locked, OUT, out_len(n_out - 1));
}
CASE(USER, C_WrapKey, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_WrapKey(g.rw, &M_UNKNOWN, g.aes, g.aes_locked, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, digest_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_WrapKey(g.rw, &M_SHA256, g.aes, g.aes_locked, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, cbc_iv_of_15_bytes, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_CBC, IV, 15};
    return FL->C_WrapKey(g.rw, &m, g.aes, g.aes_locked, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, unextractable_key, CKR_KEY_UNEXTRACTABLE)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.aes, g.aes_fixed, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, wrapping_key_without_wrap, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.aes_locked, g.aes, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, hmac_key_as_wrapping_key, CKR_WRAPPING_KEY_TYPE_INCONSISTENT)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.hmac, g.aes_locked, OUT, out_len(sizeof OUT));
}
CASE(USER, C_WrapKey, data_object_as_key, CKR_KEY_HANDLE_INVALID)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.aes, g.data, OUT, out_len(sizeof OUT));
}
CASE(USER, C_UnwrapKey, null_mechanism, CKR_ARGUMENTS_BAD)
{
    return FL->C_UnwrapKey(g.rw, NULL, g.aes, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, null_wrapped_with_length, CKR_ARGUMENTS_BAD)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, NULL, 24, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, g.wrapped_len, NULL, 3, &o1);
}
CASE(USER, C_UnwrapKey, null_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), NULL);
}
CASE(USER, C_UnwrapKey, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_UnwrapKey(g.rw, &M_UNKNOWN, g.aes, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, wrapped_of_8_bytes, CKR_WRAPPED_KEY_LEN_RANGE)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, 8, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, wrapped_of_20_bytes, CKR_WRAPPED_KEY_LEN_RANGE)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, 20, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, wrapped_garbage, CKR_WRAPPED_KEY_INVALID)
{
    CK_BYTE zeros[24] = {0};
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, zeros, sizeof zeros, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, template_without_class, CKR_TEMPLATE_INCOMPLETE)
{
    CK_ATTRIBUTE t[] = {{CKA_KEY_TYPE, &KT_AES, sizeof KT_AES}, {CKA_TOKEN, &F, 1}};
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, g.wrapped_len, t, N(t), &o1);
}
CASE(USER, C_UnwrapKey, unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_TOKEN, &F, 1}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, g.wrapped_len, t, N(t), &o1);
}
CASE(USER, C_UnwrapKey, duplicated_attribute, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_TOKEN, &F, 1}, {CKA_KEY_TYPE, &KT_GENERIC, sizeof KT_GENERIC}};
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, g.wrapped_len, t, N(t), &o1);
}
CASE(USER, C_UnwrapKey, class_of_four_bytes, CKR_ATTRIBUTE_VALUE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, 4}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES}, {CKA_TOKEN, &F, 1}};
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes, g.wrapped, g.wrapped_len, t, N(t), &o1);
}
CASE(USER, C_UnwrapKey, unwrapping_key_without_unwrap, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.aes_locked, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, hmac_key_as_unwrapping_key, CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, g.hmac, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), &o1);
}
CASE(USER, C_UnwrapKey, token_key_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_TOKEN, &T, 1}};
    return FL->C_UnwrapKey(g.ro, &M_KW, g.aes, g.wrapped, g.wrapped_len, t, N(t), &o1);
}

/* Derivation */
CASE(USER, C_DeriveKey, null_mechanism, CKR_ARGUMENTS_BAD)
{
    return FL->C_DeriveKey(g.rw, NULL, g.aes, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, null_template_with_count, CKR_ARGUMENTS_BAD)
{
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, g.aes, NULL, 4, &o1);
}
CASE(USER, C_DeriveKey, null_handle, CKR_ARGUMENTS_BAD)
{
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, g.aes, T_DERIVE, N(T_DERIVE), NULL);
}
CASE(USER, C_DeriveKey, unknown_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_DeriveKey(g.rw, &M_UNKNOWN, g.aes, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, digest_mechanism, CKR_MECHANISM_INVALID)
{
    return FL->C_DeriveKey(g.rw, &M_SHA256, g.aes, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, encrypt_data_parameter_length_wrong, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_ECB_ENCRYPT_DATA, &DERIVE_DATA, sizeof DERIVE_DATA - 1};
    return FL->C_DeriveKey(g.rw, &m, g.aes, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, encrypt_data_without_parameter, CKR_MECHANISM_PARAM_INVALID)
{
    CK_MECHANISM m = {CKM_AES_ECB_ENCRYPT_DATA, NULL, 0};
    return FL->C_DeriveKey(g.rw, &m, g.aes, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, encrypt_data_null_data_with_length, CKR_MECHANISM_PARAM_INVALID)
{
    CK_KEY_DERIVATION_STRING_DATA d = {NULL, 16};
    CK_MECHANISM m = {CKM_AES_ECB_ENCRYPT_DATA, &d, sizeof d};
    return FL->C_DeriveKey(g.rw, &m, g.aes, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, base_key_without_derive, CKR_KEY_FUNCTION_NOT_PERMITTED)
{
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, g.aes_locked, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, ecdh_parameter_length_wrong, CKR_MECHANISM_PARAM_INVALID)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, g.ec_point_len, g.ec_point};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof p - 8};
    return FL->C_DeriveKey(g.rw, &m, g.ec_priv, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, ecdh_null_public_data_with_length, CKR_MECHANISM_PARAM_INVALID)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, g.ec_point_len, NULL};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof p};
    return FL->C_DeriveKey(g.rw, &m, g.ec_priv, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, ecdh_unknown_kdf, CKR_MECHANISM_PARAM_INVALID)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NOT_A_KDF, 0, NULL, g.ec_point_len, g.ec_point};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof p};
    return FL->C_DeriveKey(g.rw, &m, g.ec_priv, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, ecdh_null_kdf_with_shared_data, CKR_MECHANISM_PARAM_INVALID)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 4, BLOCK, g.ec_point_len, g.ec_point};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof p};
    return FL->C_DeriveKey(g.rw, &m, g.ec_priv, T_DERIVE, N(T_DERIVE), &o1);
}
CASE(USER, C_DeriveKey, unknown_attribute, CKR_ATTRIBUTE_TYPE_INVALID)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}, {CKA_NOT_A_TYPE, &T, 1}};
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, g.aes, t, N(t), &o1);
}
CASE(USER, C_DeriveKey, duplicated_attribute, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}, {CKA_TOKEN, &T, 1}};
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, g.aes, t, N(t), &o1);
}
CASE(USER, C_DeriveKey, class_contradicts_mechanism, CKR_TEMPLATE_INCONSISTENT)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &F, 1}};
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, g.aes, t, N(t), &o1);
}
CASE(USER, C_DeriveKey, token_key_read_only_session, CKR_SESSION_READ_ONLY)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_SECRET, sizeof CLS_SECRET}, {CKA_KEY_TYPE, &KT_AES, sizeof KT_AES},
                        {CKA_VALUE_LEN, &LEN16, sizeof LEN16}, {CKA_TOKEN, &T, 1}};
    return FL->C_DeriveKey(g.ro, &M_ECB_DATA, g.aes, t, N(t), &o1);
}

/* Random numbers and the legacy parallel functions */
CASE(USER, C_SeedRandom, null_seed_with_length, CKR_ARGUMENTS_BAD) { return FL->C_SeedRandom(g.rw, NULL, 8); }
CASE(USER, C_GenerateRandom, null_buffer_with_length, CKR_ARGUMENTS_BAD)
{
    return FL->C_GenerateRandom(g.rw, NULL, 16);
}
CASE(USER, C_GetFunctionStatus, valid_session, CKR_FUNCTION_NOT_PARALLEL) { return FL->C_GetFunctionStatus(g.rw); }
CASE(USER, C_CancelFunction, valid_session, CKR_FUNCTION_NOT_PARALLEL) { return FL->C_CancelFunction(g.rw); }

/* ---- phase SO: the SO logged in ---------------------------------------------------------- */

CASE_FLAGS(SO, NO_RO, C_OpenSession, read_only_while_so, CKR_SESSION_READ_WRITE_SO_EXISTS)
{
    return FL->C_OpenSession(g.slot, CKF_SERIAL_SESSION, NULL, NULL, &h_out);
}
CASE_FLAGS(SO, NO_RO, C_Login, user_while_so_logged_in, CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
{
    return FL->C_Login(g.rw, CKU_USER, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin));
}
CASE_FLAGS(SO, NO_RO, C_Login, so_already_logged_in, CKR_USER_ALREADY_LOGGED_IN)
{
    return FL->C_Login(g.rw, CKU_SO, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin));
}
CASE_FLAGS(SO, NO_RO, C_InitPIN, null_pin_with_length, CKR_ARGUMENTS_BAD) { return FL->C_InitPIN(g.rw, NULL, 4); }
CASE_FLAGS(SO, NO_RO, C_InitPIN, short_pin, CKR_PIN_LEN_RANGE) { return FL->C_InitPIN(g.rw, (CK_UTF8CHAR_PTR)"12", 2); }
CASE_FLAGS(SO, NO_RO, C_CreateObject, private_object_as_so, CKR_USER_NOT_LOGGED_IN)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1}};
    return FL->C_CreateObject(g.rw, t, N(t), &o1);
}
/* Base §5.6 C_Logout: the application's handles to private objects become invalid. */
CASE_FLAGS(SO, NO_RO, C_GetAttributeValue, private_object_after_logout, CKR_OBJECT_HANDLE_INVALID)
{
    CK_ULONG v;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &v, sizeof v}};
    return FL->C_GetAttributeValue(g.rw, g.data, t, N(t));
}
CASE_FLAGS(SO, NO_RO, C_EncryptInit, private_key_after_logout, CKR_KEY_HANDLE_INVALID)
{
    return FL->C_EncryptInit(g.rw, &M_CBC_PAD, g.aes);
}

/* ---- phase FINAL: after C_Finalize ---------------------------------------------------------- */

CASE(FINAL, C_Finalize, twice, CKR_CRYPTOKI_NOT_INITIALIZED) { return FL->C_Finalize(NULL); }
CASE(FINAL, C_GetInfo, after_finalize, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_INFO i;
    return FL->C_GetInfo(&i);
}
CASE(FINAL, C_GetSessionInfo, session_from_before, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    CK_SESSION_INFO i;
    return FL->C_GetSessionInfo(g.keeper, &i);
}
CASE(FINAL, C_CloseSession, session_from_before, CKR_CRYPTOKI_NOT_INITIALIZED) { return FL->C_CloseSession(g.keeper); }
CASE(FINAL, C_EncryptInit, session_from_before, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    return FL->C_EncryptInit(g.keeper, &M_CBC_PAD, g.aes);
}
CASE(FINAL, C_GetSlotList, after_finalize, CKR_CRYPTOKI_NOT_INITIALIZED)
{
    return FL->C_GetSlotList(0, NULL, out_len(0));
}

/* ---- the session-handle table ----------------------------------------------------------------
 * Each function that takes a session, with otherwise valid arguments: before C_Initialize
 * (CKR_CRYPTOKI_NOT_INITIALIZED), and in phase USER with a handle never issued, handle 0
 * and a closed session's handle (`want`). */

enum { H_INVALID, H_ZERO, H_STALE };
static const char *const H_NAMES[] = {"_invalid", "_zero", "_stale"};

static CK_SESSION_HANDLE session_of(CK_ULONG kind)
{
    return kind == H_INVALID ? BAD_HANDLE : kind == H_ZERO ? 0 : g.stale_session;
}

static void add_handle_rows(const char *fn, const char *tag, CK_RV want, case_fn call, int line)
{
    for (CK_ULONG kind = H_INVALID; kind <= H_STALE; kind++)
        add_row(USER, 0, fn, tag, H_NAMES[kind], want, call, kind, line);
}

#define SESSION_CALL(fn, want)                                                                   \
    static CK_RV fn##__s(CK_SESSION_HANDLE h);                                                   \
    static CK_RV fn##__srun(CK_ULONG kind) { return fn##__s(session_of(kind)); }                \
    static CK_RV fn##__snoinit(CK_ULONG arg) { (void)arg; return fn##__s(1); }                   \
    __attribute__((constructor)) static void reg_##fn##__s(void)                                \
    {                                                                                            \
        add_row(NOINIT, 0, #fn, "not_initialized", "", CKR_CRYPTOKI_NOT_INITIALIZED, fn##__snoinit, 0, __LINE__); \
        add_handle_rows(#fn, "session", want, fn##__srun, __LINE__);                             \
    }                                                                                            \
    static CK_RV fn##__s(CK_SESSION_HANDLE h)

#define BAD_SESSION CKR_SESSION_HANDLE_INVALID

SESSION_CALL(C_InitPIN, BAD_SESSION) { return FL->C_InitPIN(h, (CK_UTF8CHAR_PTR)"5678", 4); }
SESSION_CALL(C_SetPIN, BAD_SESSION)
{
    return FL->C_SetPIN(h, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin), (CK_UTF8CHAR_PTR)"5678", 4);
}
SESSION_CALL(C_CloseSession, BAD_SESSION) { return FL->C_CloseSession(h); }
SESSION_CALL(C_GetSessionInfo, BAD_SESSION)
{
    CK_SESSION_INFO i;
    return FL->C_GetSessionInfo(h, &i);
}
SESSION_CALL(C_GetOperationState, CKR_FUNCTION_NOT_SUPPORTED) { return FL->C_GetOperationState(h, NULL, out_len(0)); }
SESSION_CALL(C_SetOperationState, CKR_FUNCTION_NOT_SUPPORTED) { return FL->C_SetOperationState(h, OUT, 16, 0, 0); }
SESSION_CALL(C_Login, BAD_SESSION)
{
    return FL->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin));
}
SESSION_CALL(C_Logout, BAD_SESSION) { return FL->C_Logout(h); }
SESSION_CALL(C_CreateObject, BAD_SESSION) { return FL->C_CreateObject(h, T_DATA, N(T_DATA), &o1); }
SESSION_CALL(C_CopyObject, BAD_SESSION) { return FL->C_CopyObject(h, g.data, T_LABEL, N(T_LABEL), &o1); }
SESSION_CALL(C_DestroyObject, BAD_SESSION) { return FL->C_DestroyObject(h, g.data); }
SESSION_CALL(C_GetObjectSize, BAD_SESSION) { return FL->C_GetObjectSize(h, g.data, out_len(0)); }
SESSION_CALL(C_GetAttributeValue, BAD_SESSION)
{
    CK_ULONG v;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &v, sizeof v}};
    return FL->C_GetAttributeValue(h, g.data, t, N(t));
}
SESSION_CALL(C_SetAttributeValue, BAD_SESSION) { return FL->C_SetAttributeValue(h, g.data, T_LABEL, N(T_LABEL)); }
SESSION_CALL(C_FindObjectsInit, BAD_SESSION) { return FL->C_FindObjectsInit(h, NULL, 0); }
SESSION_CALL(C_FindObjects, BAD_SESSION)
{
    CK_OBJECT_HANDLE found[4];
    return FL->C_FindObjects(h, found, 4, out_len(0));
}
SESSION_CALL(C_FindObjectsFinal, BAD_SESSION) { return FL->C_FindObjectsFinal(h); }
SESSION_CALL(C_EncryptInit, BAD_SESSION) { return FL->C_EncryptInit(h, &M_CBC_PAD, g.aes); }
SESSION_CALL(C_Encrypt, BAD_SESSION) { return FL->C_Encrypt(h, BLOCK, 16, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_EncryptUpdate, BAD_SESSION) { return FL->C_EncryptUpdate(h, BLOCK, 16, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_EncryptFinal, BAD_SESSION) { return FL->C_EncryptFinal(h, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_DecryptInit, BAD_SESSION) { return FL->C_DecryptInit(h, &M_CBC_PAD, g.aes); }
SESSION_CALL(C_Decrypt, BAD_SESSION) { return FL->C_Decrypt(h, BLOCK, 32, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_DecryptUpdate, BAD_SESSION) { return FL->C_DecryptUpdate(h, BLOCK, 32, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_DecryptFinal, BAD_SESSION) { return FL->C_DecryptFinal(h, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_DigestInit, BAD_SESSION) { return FL->C_DigestInit(h, &M_SHA256); }
SESSION_CALL(C_Digest, BAD_SESSION) { return FL->C_Digest(h, BLOCK, 3, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_DigestUpdate, BAD_SESSION) { return FL->C_DigestUpdate(h, BLOCK, 3); }
SESSION_CALL(C_DigestKey, BAD_SESSION) { return FL->C_DigestKey(h, g.aes); }
SESSION_CALL(C_DigestFinal, BAD_SESSION) { return FL->C_DigestFinal(h, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_SignInit, BAD_SESSION) { return FL->C_SignInit(h, &M_HMAC, g.hmac); }
SESSION_CALL(C_Sign, BAD_SESSION) { return FL->C_Sign(h, BLOCK, 16, SIG, out_len(sizeof SIG)); }
SESSION_CALL(C_SignUpdate, BAD_SESSION) { return FL->C_SignUpdate(h, BLOCK, 16); }
SESSION_CALL(C_SignFinal, BAD_SESSION) { return FL->C_SignFinal(h, SIG, out_len(sizeof SIG)); }
SESSION_CALL(C_SignRecoverInit, CKR_FUNCTION_NOT_SUPPORTED) { return FL->C_SignRecoverInit(h, &M_ECDSA, g.ec_priv); }
SESSION_CALL(C_SignRecover, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignRecover(h, BLOCK, 16, SIG, out_len(sizeof SIG));
}
SESSION_CALL(C_VerifyInit, BAD_SESSION) { return FL->C_VerifyInit(h, &M_HMAC, g.hmac); }
SESSION_CALL(C_Verify, BAD_SESSION) { return FL->C_Verify(h, BLOCK, 16, SIG, 32); }
SESSION_CALL(C_VerifyUpdate, BAD_SESSION) { return FL->C_VerifyUpdate(h, BLOCK, 16); }
SESSION_CALL(C_VerifyFinal, BAD_SESSION) { return FL->C_VerifyFinal(h, SIG, 32); }
SESSION_CALL(C_VerifyRecoverInit, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_VerifyRecoverInit(h, &M_ECDSA, g.ec_pub);
}
SESSION_CALL(C_VerifyRecover, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_VerifyRecover(h, SIG, 64, OUT, out_len(sizeof OUT));
}
SESSION_CALL(C_DigestEncryptUpdate, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DigestEncryptUpdate(h, BLOCK, 16, OUT, out_len(sizeof OUT));
}
SESSION_CALL(C_DecryptDigestUpdate, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DecryptDigestUpdate(h, BLOCK, 16, OUT, out_len(sizeof OUT));
}
SESSION_CALL(C_SignEncryptUpdate, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_SignEncryptUpdate(h, BLOCK, 16, OUT, out_len(sizeof OUT));
}
SESSION_CALL(C_DecryptVerifyUpdate, CKR_FUNCTION_NOT_SUPPORTED)
{
    return FL->C_DecryptVerifyUpdate(h, BLOCK, 16, OUT, out_len(sizeof OUT));
}
SESSION_CALL(C_GenerateKey, BAD_SESSION) { return FL->C_GenerateKey(h, &M_AES_GEN, T_AES16, N(T_AES16), &o1); }
SESSION_CALL(C_GenerateKeyPair, BAD_SESSION)
{
    return FL->C_GenerateKeyPair(h, &M_EC_GEN, T_EC_PUB, N(T_EC_PUB), T_EC_PRIV, N(T_EC_PRIV), &o1, &o2);
}
SESSION_CALL(C_WrapKey, BAD_SESSION) { return FL->C_WrapKey(h, &M_KW, g.aes, g.aes_locked, OUT, out_len(sizeof OUT)); }
SESSION_CALL(C_UnwrapKey, BAD_SESSION)
{
    return FL->C_UnwrapKey(h, &M_KW, g.aes, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), &o1);
}
SESSION_CALL(C_DeriveKey, BAD_SESSION) { return FL->C_DeriveKey(h, &M_ECB_DATA, g.aes, T_DERIVE, N(T_DERIVE), &o1); }
SESSION_CALL(C_SeedRandom, BAD_SESSION) { return FL->C_SeedRandom(h, BLOCK, 8); }
SESSION_CALL(C_GenerateRandom, BAD_SESSION) { return FL->C_GenerateRandom(h, OUT, 16); }
SESSION_CALL(C_GetFunctionStatus, BAD_SESSION) { return FL->C_GetFunctionStatus(h); }
SESSION_CALL(C_CancelFunction, BAD_SESSION) { return FL->C_CancelFunction(h); }

/* ---- the object-handle table ------------------------------------------------------------------
 * Each function argument that names an object, with a handle never issued, handle 0 and a
 * destroyed object's handle; everything else valid. */

static CK_OBJECT_HANDLE object_of(CK_ULONG kind)
{
    return kind == H_INVALID ? BAD_HANDLE : kind == H_ZERO ? 0 : g.stale_object;
}

#define OBJECT_CALL(fn, tag, want)                                                               \
    static CK_RV fn##__##tag(CK_OBJECT_HANDLE o);                                                \
    static CK_RV fn##__##tag##_run(CK_ULONG kind) { return fn##__##tag(object_of(kind)); }      \
    __attribute__((constructor)) static void reg_##fn##__##tag(void)                            \
    { add_handle_rows(#fn, #tag, want, fn##__##tag##_run, __LINE__); }                           \
    static CK_RV fn##__##tag(CK_OBJECT_HANDLE o)

OBJECT_CALL(C_CopyObject, object, CKR_OBJECT_HANDLE_INVALID)
{
    return FL->C_CopyObject(g.rw, o, T_LABEL, N(T_LABEL), &o1);
}
OBJECT_CALL(C_DestroyObject, object, CKR_OBJECT_HANDLE_INVALID) { return FL->C_DestroyObject(g.rw, o); }
OBJECT_CALL(C_GetObjectSize, object, CKR_OBJECT_HANDLE_INVALID) { return FL->C_GetObjectSize(g.rw, o, out_len(0)); }
OBJECT_CALL(C_GetAttributeValue, object, CKR_OBJECT_HANDLE_INVALID)
{
    CK_ULONG v;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &v, sizeof v}};
    return FL->C_GetAttributeValue(g.rw, o, t, N(t));
}
OBJECT_CALL(C_SetAttributeValue, object, CKR_OBJECT_HANDLE_INVALID)
{
    return FL->C_SetAttributeValue(g.rw, o, T_LABEL, N(T_LABEL));
}
OBJECT_CALL(C_EncryptInit, key, CKR_KEY_HANDLE_INVALID) { return FL->C_EncryptInit(g.rw, &M_CBC_PAD, o); }
OBJECT_CALL(C_DecryptInit, key, CKR_KEY_HANDLE_INVALID) { return FL->C_DecryptInit(g.rw, &M_CBC_PAD, o); }
OBJECT_CALL(C_SignInit, key, CKR_KEY_HANDLE_INVALID) { return FL->C_SignInit(g.rw, &M_HMAC, o); }
OBJECT_CALL(C_VerifyInit, key, CKR_KEY_HANDLE_INVALID) { return FL->C_VerifyInit(g.rw, &M_HMAC, o); }
OBJECT_CALL(C_DigestKey, key, CKR_KEY_HANDLE_INVALID)
{
    PRE(FL->C_DigestInit(g.rw, &M_SHA256));
    return FL->C_DigestKey(g.rw, o);
}
OBJECT_CALL(C_WrapKey, wrapping_key, CKR_WRAPPING_KEY_HANDLE_INVALID)
{
    return FL->C_WrapKey(g.rw, &M_KW, o, g.aes_locked, OUT, out_len(sizeof OUT));
}
OBJECT_CALL(C_WrapKey, key, CKR_KEY_HANDLE_INVALID)
{
    return FL->C_WrapKey(g.rw, &M_KW, g.aes, o, OUT, out_len(sizeof OUT));
}
OBJECT_CALL(C_UnwrapKey, unwrapping_key, CKR_UNWRAPPING_KEY_HANDLE_INVALID)
{
    return FL->C_UnwrapKey(g.rw, &M_KW, o, g.wrapped, g.wrapped_len, T_UNWRAP, N(T_UNWRAP), &o1);
}
OBJECT_CALL(C_DeriveKey, base_key, CKR_KEY_HANDLE_INVALID)
{
    return FL->C_DeriveKey(g.rw, &M_ECB_DATA, o, T_DERIVE, N(T_DERIVE), &o1);
}

/* ---- phases: what each needs before its rows ----------------------------------------------- */

static int setup_failed(const char *step, CK_RV rv)
{
    printf("SETUP %s got=0x%lx\n", step, rv);
    return 0;
}
#define STEP(name, call) do { CK_RV rv_ = (call); if (rv_ != CKR_OK) return setup_failed(name, rv_); } while (0)

static void pad32(CK_UTF8CHAR out[32], const char *s)
{
    memset(out, ' ', 32);
    memcpy(out, s, strlen(s) < 32 ? strlen(s) : 32);
}

/* The slot whose token is labelled `label`, or (label NULL) the slot with no token. */
static int find_slot(const char *label, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[256];
    CK_ULONG n = 256;
    CK_UTF8CHAR want[32];
    if (FL->C_GetSlotList(1, slots, &n) != CKR_OK)
        return 0;
    if (label)
        pad32(want, label);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (FL->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        int inited = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
        if ((label && inited && memcmp(ti.label, want, 32) == 0) || (!label && !inited)) {
            *out = slots[i];
            return 1;
        }
    }
    return 0;
}

static CK_RV login(CK_SESSION_HANDLE h, CK_ULONG who, const char *pin)
{
    return FL->C_Login(h, who, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static CK_RV open_rw(CK_SESSION_HANDLE *h)
{
    return FL->C_OpenSession(g.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, h);
}

static int enter_init(void)
{
    STEP("C_Initialize", FL->C_Initialize(NULL));
    if (!find_slot(NULL, &g.free_slot))
        return setup_failed("no slot without a token", 0);
    return 1;
}

/* Make the token and its user PIN; keep a session open and nobody logged in. (SoftHSM2
 * shows no new free slot until the next C_Initialize: the free-slot rows ran before.) */
static int enter_public(void)
{
    CK_UTF8CHAR label[32];
    pad32(label, g.label);
    STEP("C_InitToken", FL->C_InitToken(g.free_slot, (CK_UTF8CHAR_PTR)g.so_pin, strlen(g.so_pin), label));
    if (!find_slot(g.label, &g.slot))
        return setup_failed("the new token not found", 0);
    STEP("open the keeper session", open_rw(&g.keeper));
    STEP("SO login", login(g.keeper, CKU_SO, g.so_pin));
    STEP("C_InitPIN", FL->C_InitPIN(g.keeper, (CK_UTF8CHAR_PTR)g.user_pin, strlen(g.user_pin)));
    STEP("SO logout", FL->C_Logout(g.keeper));
    /* The rows' own sessions first, then the one that goes stale: a module that hands
     * out the lowest free handle gives the rows theirs back, never the stale one. */
    STEP("open rw", open_rw(&g.rw));
    STEP("open ro", FL->C_OpenSession(g.slot, CKF_SERIAL_SESSION, NULL, NULL, &g.ro));
    STEP("open the session that goes stale", open_rw(&g.stale_session));
    STEP("close it", FL->C_CloseSession(g.stale_session));
    return 1;
}

static CK_RV gen_secret(CK_MECHANISM_TYPE mech, CK_ULONG len, CK_BBOOL usable, CK_BBOOL sensitive,
                        CK_OBJECT_HANDLE *out)
{
    CK_MECHANISM m = {mech, NULL, 0};
    CK_BBOOL extractable = !sensitive;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1},
        {CKA_SENSITIVE, &sensitive, 1}, {CKA_EXTRACTABLE, &extractable, 1},
        {CKA_ENCRYPT, &usable, 1}, {CKA_DECRYPT, &usable, 1}, {CKA_WRAP, &usable, 1},
        {CKA_UNWRAP, &usable, 1}, {CKA_DERIVE, &usable, 1},
    };
    CK_ATTRIBUTE mac[] = {
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1},
        {CKA_SIGN, &usable, 1}, {CKA_VERIFY, &usable, 1},
    };
    if (mech == CKM_GENERIC_SECRET_KEY_GEN)
        return FL->C_GenerateKey(g.keeper, &m, mac, N(mac), out);
    return FL->C_GenerateKey(g.keeper, &m, t, N(t), out);
}

/* Log the user in and make the keys and objects the rows use (session objects of the
 * keeper session, and one token object). */
static int enter_user(void)
{
    STEP("user login", login(g.keeper, CKU_USER, g.user_pin));
    STEP("AES key", gen_secret(CKM_AES_KEY_GEN, 32, T, F, &g.aes));
    STEP("AES key without usages", gen_secret(CKM_AES_KEY_GEN, 16, F, F, &g.aes_locked));
    STEP("sensitive AES key", gen_secret(CKM_AES_KEY_GEN, 16, T, T, &g.aes_fixed));
    STEP("HMAC key", gen_secret(CKM_GENERIC_SECRET_KEY_GEN, 32, T, F, &g.hmac));
    STEP("HMAC key without usages", gen_secret(CKM_GENERIC_SECRET_KEY_GEN, 32, F, F, &g.hmac_locked));
    CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, P256, sizeof P256}, {CKA_TOKEN, &F, 1}, {CKA_VERIFY, &T, 1}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1}, {CKA_SIGN, &T, 1}, {CKA_DERIVE, &T, 1}};
    STEP("EC key pair", FL->C_GenerateKeyPair(g.keeper, &M_EC_GEN, pub, N(pub), priv, N(priv), &g.ec_pub, &g.ec_priv));
    CK_ATTRIBUTE point = {CKA_EC_POINT, g.ec_point, sizeof g.ec_point};
    STEP("read CKA_EC_POINT", FL->C_GetAttributeValue(g.keeper, g.ec_pub, &point, 1));
    g.ec_point_len = point.ulValueLen;
    CK_ATTRIBUTE data[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &F, 1}, {CKA_PRIVATE, &T, 1},
                           {CKA_VALUE, (void *)"x", 1}};
    STEP("data object", FL->C_CreateObject(g.keeper, data, N(data), &g.data));
    CK_ATTRIBUTE token_data[] = {{CKA_CLASS, &CLS_DATA, sizeof CLS_DATA}, {CKA_TOKEN, &T, 1},
                                 {CKA_PRIVATE, &F, 1}, {CKA_LABEL, (void *)"badinput", 8}};
    STEP("token data object", FL->C_CreateObject(g.keeper, token_data, N(token_data), &g.token_data));
    STEP("object that goes stale", FL->C_CreateObject(g.keeper, data, N(data), &g.stale_object));
    STEP("destroy it", FL->C_DestroyObject(g.keeper, g.stale_object));
    g.wrapped_len = sizeof g.wrapped;
    STEP("wrap a key", FL->C_WrapKey(g.keeper, &M_KW, g.aes, g.aes_locked, g.wrapped, &g.wrapped_len));
    return 1;
}

static int enter_so(void)
{
    STEP("close ro", FL->C_CloseSession(g.ro));
    g.ro = 0;
    STEP("user logout", FL->C_Logout(g.keeper));
    STEP("SO login", login(g.keeper, CKU_SO, g.so_pin));
    return 1;
}

static int enter_final(void)
{
    STEP("SO logout", FL->C_Logout(g.keeper));
    STEP("C_Finalize", FL->C_Finalize(NULL));
    return 1;
}

static int (*const ENTER[N_PHASES])(void) = {NULL, enter_init, enter_public, enter_user, enter_so, enter_final};

/* Fresh row sessions: closed and opened again, in the order they were first opened. */
static int fresh_sessions(enum phase phase, unsigned flags)
{
    if (phase != PUBLIC && phase != USER && phase != SO)
        return 1;
    if (g.ro)
        FL->C_CloseSession(g.ro);
    FL->C_CloseSession(g.rw);
    g.ro = 0;
    STEP("reopen rw", open_rw(&g.rw));
    if (phase != SO && !(flags & NO_RO))
        STEP("reopen ro", FL->C_OpenSession(g.slot, CKF_SERIAL_SESSION, NULL, NULL, &g.ro));
    return 1;
}

/* ---- running ----------------------------------------------------------------------------------- */

static const struct row *volatile g_current;

static void on_crash(int sig)
{
    char line[256];
    const struct row *r = g_current;
    int n = snprintf(line, sizeof line, "CRASH %s %s%s signal=%d\n", r ? r->fn : "-", r ? r->what : "-",
                     r ? r->suffix : "", sig);
    if (write(STDOUT_FILENO, line, (size_t)n) < 0)
        _exit(3);
    signal(sig, SIG_DFL);
    raise(sig);
}

static int by_phase_then_line(const void *a, const void *b)
{
    const struct row *x = a, *y = b;
    if (x->phase != y->phase)
        return (int)x->phase - (int)y->phase;
    if (x->line != y->line)
        return x->line - y->line;
    return (int)x->arg - (int)y->arg;
}

/* Each row's printed name must be its own (the C names cannot collide; the printed ones
 * of a CASE and a table row could). */
static int names_unique(void)
{
    char a[160], b[160];
    for (int i = 0; i < g_nrows; i++)
        for (int j = i + 1; j < g_nrows; j++) {
            snprintf(a, sizeof a, "%s.%s%s", g_rows[i].fn, g_rows[i].what, g_rows[i].suffix);
            snprintf(b, sizeof b, "%s.%s%s", g_rows[j].fn, g_rows[j].what, g_rows[j].suffix);
            if (strcmp(a, b) == 0) {
                printf("SETUP two rows named %s (lines %d and %d)\n", a, g_rows[i].line, g_rows[j].line);
                return 0;
            }
        }
    return 1;
}

/* --skip and --only lists */
static char **g_skip, **g_only;
static int g_nskip, g_nonly;

static int named(const struct row *r, char **names, int n)
{
    char name[160];
    snprintf(name, sizeof name, "%s.%s%s", r->fn, r->what, r->suffix);
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return 1;
    return 0;
}

/* Positional arguments first, then --skip/--only pairs; 0 on a usage error. */
static int parse_args(int argc, char **argv, char **pos, int *npos)
{
    g_skip = calloc((size_t)argc, sizeof *g_skip);
    g_only = calloc((size_t)argc, sizeof *g_only);
    *npos = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc)
            g_skip[g_nskip++] = argv[++i];
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            g_only[g_nonly++] = argv[++i];
        else if (argv[i][0] == '-' || *npos == 4)
            return 0;
        else
            pos[(*npos)++] = argv[i];
    }
    return *npos == 1 || *npos == 4;
}

int main(int argc, char **argv)
{
    char *pos[4];
    int npos;
    if (!parse_args(argc, argv, pos, &npos)) {
        fprintf(stderr, "usage: %s MODULE_PATH [TOKEN_LABEL SO_PIN USER_PIN] [--skip CASE]... [--only CASE]...\n",
                argv[0]);
        return 2;
    }
    char label[40];
    snprintf(label, sizeof label, "badinput-%ld-%d", (long)time(NULL) % 100000, (int)getpid());
    g.label = npos == 4 ? pos[1] : label;
    g.so_pin = npos == 4 ? pos[2] : "12345678";
    g.user_pin = npos == 4 ? pos[3] : "1234";
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGABRT, on_crash);
    signal(SIGFPE, on_crash);

    void *lib = dlopen(pos[0], RTLD_NOW | RTLD_LOCAL);
    CK_RV (*get)(CK_FUNCTION_LIST_PTR *) =
        lib ? (CK_RV(*)(CK_FUNCTION_LIST_PTR *))dlsym(lib, "C_GetFunctionList") : NULL;
    if (get == NULL || get(&g.fl) != CKR_OK || g.fl == NULL) {
        printf("SETUP load %s: %s\n", pos[0], lib ? "no function list" : dlerror());
        return 2;
    }

    qsort(g_rows, (size_t)g_nrows, sizeof g_rows[0], by_phase_then_line);
    if (!names_unique())
        return 2;
    int passed = 0, failed = 0, status = 0;
    enum phase phase = NOINIT;
    for (int i = 0; i < g_nrows && status == 0; i++) {
        const struct row *r = &g_rows[i];
        if ((g_nonly || (r->flags & CANARY)) && !named(r, g_only, g_nonly))
            continue;
        while (phase < r->phase) {
            phase++;
            printf("# phase %s\n", PHASE_NAMES[phase]);
            if (ENTER[phase] && !ENTER[phase]())
                status = 2;
        }
        if (status || !fresh_sessions(phase, r->flags)) {
            status = 2;
            break;
        }
        if (named(r, g_skip, g_nskip)) {
            printf("skip %s %s%s\n", r->fn, r->what, r->suffix);
            continue;
        }
        g_current = r;
        CK_RV got = r->call(r->arg);
        g_current = NULL;
        int ok = got == r->want;
        printf("%s %s %s%s got=0x%lx want=0x%lx\n", ok ? "ok" : "FAIL", r->fn, r->what, r->suffix, got, r->want);
        ok ? passed++ : failed++;
    }
    if (status == 0 && !g_nonly && phase < FINAL)
        status = 2;     /* every phase has rows: one not reached means the run stopped early */
    printf("badinput: %d cases, %d ok, %d FAIL\n", passed + failed, passed, failed);
    return status ? status : failed > 0;
}
