/* abi_check: drives a PKCS#11 v2.40 module exactly as a C host does, and reports
 * one line per check.
 *
 *   abi_check MODULE_PATH [TOKEN_LABEL SO_PIN USER_PIN]
 *
 * The module is loaded with dlopen(RTLD_NOW | RTLD_LOCAL), as pkcs11-tool loads it.
 * Each check prints "PASS name" or "FAIL name: detail"; the last line is
 * "N passed, M failed" and the exit status is non-zero when M > 0. The expectations
 * are the return codes the PKCS#11 v2.40 Base Specification names; where a module may
 * legitimately differ, the check still prints its result and the caller
 * (tests/test_c_host.py) decides.
 *
 * A token is made on the module's free slot with C_InitToken and C_InitPIN.
 * Only the types come from csrc/pkcs11.h; the constants are written here from the
 * specification's tables.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../csrc/pkcs11.h"

/* ---- constants (PKCS#11 v2.40 pkcs11t.h values) ---------------------------------- */

#define CKR_OK                          0x000UL
#define CKR_SLOT_ID_INVALID             0x003UL
#define CKR_GENERAL_ERROR               0x005UL
#define CKR_ARGUMENTS_BAD               0x007UL
#define CKR_CANT_LOCK                   0x00AUL
#define CKR_ATTRIBUTE_SENSITIVE         0x011UL
#define CKR_ATTRIBUTE_TYPE_INVALID      0x012UL
#define CKR_KEY_HANDLE_INVALID          0x060UL
#define CKR_MECHANISM_INVALID           0x070UL
#define CKR_OBJECT_HANDLE_INVALID       0x082UL
#define CKR_OPERATION_ACTIVE            0x090UL
#define CKR_OPERATION_NOT_INITIALIZED   0x091UL
#define CKR_SESSION_HANDLE_INVALID      0x0B3UL
#define CKR_USER_NOT_LOGGED_IN          0x101UL
#define CKR_BUFFER_TOO_SMALL            0x150UL
#define CKR_CRYPTOKI_NOT_INITIALIZED    0x190UL
#define CKR_CRYPTOKI_ALREADY_INITIALIZED 0x191UL

#define CK_UNAVAILABLE_INFORMATION (~0UL)
#define CK_TRUE 1
#define CK_FALSE 0

#define CKF_OS_LOCKING_OK       0x2UL
#define CKF_RW_SESSION          0x2UL
#define CKF_SERIAL_SESSION      0x4UL
#define CKF_TOKEN_INITIALIZED   0x400UL

#define CKU_SO   0UL
#define CKU_USER 1UL

#define CKO_DATA        0UL
#define CKO_SECRET_KEY  4UL
#define CKK_GENERIC_SECRET 0x10UL
#define CKK_AES         0x1FUL

#define CKA_CLASS       0x000UL
#define CKA_TOKEN       0x001UL
#define CKA_LABEL       0x003UL
#define CKA_VALUE       0x011UL
#define CKA_KEY_TYPE    0x100UL
#define CKA_SENSITIVE   0x103UL
#define CKA_ENCRYPT     0x104UL
#define CKA_DECRYPT     0x105UL
#define CKA_SIGN        0x108UL
#define CKA_VERIFY      0x10AUL
#define CKA_VALUE_LEN   0x161UL
#define CKA_EXTRACTABLE 0x162UL
#define CKA_NOT_A_TYPE  0x7FFFFF00UL    /* below CKA_VENDOR_DEFINED, assigned to nothing */

#define CKM_SHA256                  0x250UL
#define CKM_SHA256_HMAC             0x251UL
#define CKM_GENERIC_SECRET_KEY_GEN  0x350UL
#define CKM_AES_KEY_GEN             0x1080UL
#define CKM_AES_CBC_PAD             0x1085UL
#define CKM_AES_KEY_WRAP            0x2109UL

#define BAD_SLOT    0x0DEADBEEFUL
#define BAD_HANDLE  0x0DEAD0001UL
#define N_FUNCTIONS 68

/* SHA-256("abc"), FIPS 180-2 appendix B.1 */
static const CK_BYTE SHA256_ABC[32] = {
    0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad,
};

/* ---- reporting ------------------------------------------------------------------------ */

static int g_passed, g_failed;

static const char *rv_name(CK_RV rv)
{
    static char other[32];
    switch (rv) {
#define N(x) case x: return #x;
    N(CKR_OK) N(CKR_SLOT_ID_INVALID) N(CKR_GENERAL_ERROR) N(CKR_ARGUMENTS_BAD) N(CKR_CANT_LOCK)
    N(CKR_ATTRIBUTE_SENSITIVE) N(CKR_ATTRIBUTE_TYPE_INVALID) N(CKR_KEY_HANDLE_INVALID)
    N(CKR_MECHANISM_INVALID) N(CKR_OBJECT_HANDLE_INVALID) N(CKR_OPERATION_ACTIVE)
    N(CKR_OPERATION_NOT_INITIALIZED) N(CKR_SESSION_HANDLE_INVALID) N(CKR_USER_NOT_LOGGED_IN)
    N(CKR_BUFFER_TOO_SMALL) N(CKR_CRYPTOKI_NOT_INITIALIZED) N(CKR_CRYPTOKI_ALREADY_INITIALIZED)
#undef N
    default:
        snprintf(other, sizeof other, "CKR_0x%lX", rv);
        return other;
    }
}

/* Record one check: ok, or a failure with a printf-style detail. */
static int check(const char *name, int ok, const char *fmt, ...)
{
    if (ok) {
        printf("PASS %s\n", name);
        g_passed++;
    } else {
        char detail[512] = "";
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
        printf("FAIL %s: %s\n", name, detail);
        g_failed++;
    }
    fflush(stdout);
    return ok;
}

static int expect(const char *name, CK_RV got, CK_RV want)
{
    return check(name, got == want, "expected %s, got %s", rv_name(want), rv_name(got));
}

/* ---- loading ---------------------------------------------------------------------------- */

typedef CK_RV (*get_list_fn)(CK_FUNCTION_LIST_PTR *);

static CK_FUNCTION_LIST_PTR load(const char *path, void **handle, const char *prefix, int checks)
{
    char name[64];
    *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    snprintf(name, sizeof name, "%s.dlopen", prefix);
    if (!check(name, *handle != NULL, "%s", dlerror()))
        return NULL;
    get_list_fn get = (get_list_fn)dlsym(*handle, "C_GetFunctionList");
    snprintf(name, sizeof name, "%s.symbol", prefix);
    if (!check(name, get != NULL, "no C_GetFunctionList symbol"))
        return NULL;
    if (checks)
        expect("fl.null_argument", get(NULL), CKR_ARGUMENTS_BAD);
    CK_FUNCTION_LIST_PTR fl = NULL;
    CK_RV rv = get(&fl);
    snprintf(name, sizeof name, "%s.get_function_list", prefix);
    if (!check(name, rv == CKR_OK && fl != NULL, "rv %s, list %p", rv_name(rv), (void *)fl))
        return NULL;
    return fl;
}

static void check_function_list(CK_FUNCTION_LIST_PTR fl)
{
    check("fl.version", fl->version.major == 2 && fl->version.minor == 40,
          "version %d.%d", fl->version.major, fl->version.minor);
    /* The table is the version followed by 68 function pointers in the spec's order. */
    void (*const *entry)(void) = (void (*const *)(void))&fl->C_Initialize;
    int missing = -1, count = 0;
    for (int i = 0; i < N_FUNCTIONS; i++) {
        if (entry[i] == NULL) {
            count++;
            if (missing < 0)
                missing = i;
        }
    }
    check("fl.all_entries", count == 0, "%d NULL entries, the first at index %d", count, missing);
    CK_FUNCTION_LIST_PTR again = NULL;
    CK_RV rv = fl->C_GetFunctionList(&again);
    check("fl.through_itself", rv == CKR_OK && again != NULL && again->C_Initialize == fl->C_Initialize,
          "rv %s", rv_name(rv));
}

/* ---- application mutexes (CK_C_INITIALIZE_ARGS) -------------------------------------- */

static CK_RV mx_create(CK_VOID_PTR *pp)
{
    pthread_mutex_t *m = malloc(sizeof *m);
    if (m == NULL)
        return 0x002;   /* CKR_HOST_MEMORY */
    pthread_mutex_init(m, NULL);
    *pp = m;
    return CKR_OK;
}
static CK_RV mx_destroy(CK_VOID_PTR p) { pthread_mutex_destroy(p); free(p); return CKR_OK; }
static CK_RV mx_lock(CK_VOID_PTR p) { pthread_mutex_lock(p); return CKR_OK; }
static CK_RV mx_unlock(CK_VOID_PTR p) { pthread_mutex_unlock(p); return CKR_OK; }

/* ---- section: before C_Initialize, and C_Initialize's arguments ------------------------ */

static void check_initialize(CK_FUNCTION_LIST_PTR fl)
{
    CK_INFO ci;
    CK_ULONG n = 0;
    CK_SESSION_HANDLE h = 0;
    expect("preinit.get_info", fl->C_GetInfo(&ci), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("preinit.get_slot_list", fl->C_GetSlotList(CK_FALSE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("preinit.open_session",
           fl->C_OpenSession(0, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("preinit.close_session", fl->C_CloseSession(1), CKR_CRYPTOKI_NOT_INITIALIZED);
    expect("preinit.finalize", fl->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);

    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.pReserved = &args;
    expect("init.reserved_not_null", fl->C_Initialize(&args), CKR_ARGUMENTS_BAD);

    memset(&args, 0, sizeof args);
    args.CreateMutex = mx_create;
    args.DestroyMutex = mx_destroy;
    expect("init.some_mutex_functions", fl->C_Initialize(&args), CKR_ARGUMENTS_BAD);
    expect("init.bad_arguments_leave_it_uninitialized", fl->C_GetInfo(&ci), CKR_CRYPTOKI_NOT_INITIALIZED);

    /* All four mutex functions and no CKF_OS_LOCKING_OK (Base §5.4 C_Initialize, case 3):
     * a library that cannot lock with the application's functions returns CKR_CANT_LOCK. */
    args.LockMutex = mx_lock;
    args.UnlockMutex = mx_unlock;
    CK_RV rv = fl->C_Initialize(&args);
    expect("init.app_mutexes_without_os_locking", rv, CKR_CANT_LOCK);
    if (rv == CKR_OK)
        fl->C_Finalize(NULL);

    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    expect("init.os_locking_ok", fl->C_Initialize(&args), CKR_OK);
    expect("init.twice", fl->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    expect("init.finalize_reserved_not_null", fl->C_Finalize(&args), CKR_ARGUMENTS_BAD);
    expect("init.still_initialized", fl->C_GetInfo(&ci), CKR_OK);
}

/* ---- section: info calls and the length-query convention ------------------------------ */

static CK_SLOT_ID g_any_slot;

static void check_info(CK_FUNCTION_LIST_PTR fl)
{
    CK_INFO ci;
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_MECHANISM_INFO mi;
    CK_SESSION_HANDLE h;
    CK_ULONG n = 0;

    expect("info.get_info_null", fl->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    CK_RV rv = fl->C_GetInfo(&ci);
    check("info.get_info", rv == CKR_OK && ci.cryptokiVersion.major == 2,
          "rv %s, cryptoki %d.%d", rv_name(rv), ci.cryptokiVersion.major, ci.cryptokiVersion.minor);

    /* C_GetSlotList: NULL list -> the count; too short -> BUFFER_TOO_SMALL and the count. */
    rv = fl->C_GetSlotList(CK_FALSE, NULL, &n);
    check("slots.count_query", rv == CKR_OK && n >= 1, "rv %s, count %lu", rv_name(rv), n);
    CK_ULONG need = n;
    CK_SLOT_ID slots[64];
    CK_ULONG short_n = need ? need - 1 : 0;
    rv = fl->C_GetSlotList(CK_FALSE, slots, &short_n);
    check("slots.too_short_list", rv == CKR_BUFFER_TOO_SMALL && short_n == need,
          "rv %s, count %lu (needs %lu)", rv_name(rv), short_n, need);
    n = 64;
    rv = fl->C_GetSlotList(CK_FALSE, slots, &n);
    check("slots.filled", rv == CKR_OK && n == need, "rv %s, count %lu (needs %lu)", rv_name(rv), n, need);
    g_any_slot = n ? slots[0] : 0;

    expect("info.slot_info_null", fl->C_GetSlotInfo(g_any_slot, NULL), CKR_ARGUMENTS_BAD);
    expect("info.token_info_null", fl->C_GetTokenInfo(g_any_slot, NULL), CKR_ARGUMENTS_BAD);
    expect("info.slot_info", fl->C_GetSlotInfo(g_any_slot, &si), CKR_OK);
    expect("info.slot_info_bad_slot", fl->C_GetSlotInfo(BAD_SLOT, &si), CKR_SLOT_ID_INVALID);
    expect("info.token_info_bad_slot", fl->C_GetTokenInfo(BAD_SLOT, &ti), CKR_SLOT_ID_INVALID);
    n = 0;
    expect("info.mechanism_list_bad_slot", fl->C_GetMechanismList(BAD_SLOT, NULL, &n), CKR_SLOT_ID_INVALID);
    expect("info.mechanism_info_bad_slot", fl->C_GetMechanismInfo(BAD_SLOT, CKM_SHA256, &mi),
           CKR_SLOT_ID_INVALID);
    expect("info.open_session_bad_slot",
           fl->C_OpenSession(BAD_SLOT, CKF_SERIAL_SESSION, NULL, NULL, &h), CKR_SLOT_ID_INVALID);

    /* C_GetMechanismList, the same convention. */
    n = 0;
    rv = fl->C_GetMechanismList(g_any_slot, NULL, &n);
    check("mechs.count_query", rv == CKR_OK && n >= 1, "rv %s, count %lu", rv_name(rv), n);
    need = n;
    CK_MECHANISM_TYPE *mechs = calloc(need + 1, sizeof *mechs);
    short_n = need ? need - 1 : 0;
    rv = fl->C_GetMechanismList(g_any_slot, mechs, &short_n);
    check("mechs.too_short_list", rv == CKR_BUFFER_TOO_SMALL && short_n == need,
          "rv %s, count %lu (needs %lu)", rv_name(rv), short_n, need);
    n = need + 1;
    rv = fl->C_GetMechanismList(g_any_slot, mechs, &n);
    int has[4] = {0};
    const CK_MECHANISM_TYPE wanted[4] = {CKM_SHA256, CKM_SHA256_HMAC, CKM_AES_CBC_PAD, CKM_AES_KEY_GEN};
    for (CK_ULONG i = 0; rv == CKR_OK && i < n; i++)
        for (int j = 0; j < 4; j++)
            has[j] |= mechs[i] == wanted[j];
    check("mechs.filled", rv == CKR_OK && n == need && has[0] && has[1] && has[2] && has[3],
          "rv %s, count %lu (needs %lu), has SHA256 %d HMAC %d AES_CBC_PAD %d AES_KEY_GEN %d",
          rv_name(rv), n, need, has[0], has[1], has[2], has[3]);
    free(mechs);
    expect("mechs.info", fl->C_GetMechanismInfo(g_any_slot, CKM_AES_CBC_PAD, &mi), CKR_OK);
    expect("mechs.info_unknown", fl->C_GetMechanismInfo(g_any_slot, 0x7FFFFF00UL, &mi), CKR_MECHANISM_INVALID);
}

/* ---- section: a token ----------------------------------------------------------------- */

static void pad32(CK_UTF8CHAR out[32], const char *s)
{
    memset(out, ' ', 32);
    memcpy(out, s, strlen(s) < 32 ? strlen(s) : 32);
}

/* The slot holding the token labelled `label`, or the free (uninitialised) slot. */
static int find_slot(CK_FUNCTION_LIST_PTR fl, const char *label, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    if (fl->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return 0;
    CK_UTF8CHAR want[32];
    if (label)
        pad32(want, label);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (fl->C_GetTokenInfo(slots[i], &ti) != CKR_OK)
            continue;
        int inited = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
        if ((label && inited && memcmp(ti.label, want, 32) == 0) || (!label && !inited)) {
            *out = slots[i];
            return 1;
        }
    }
    return 0;
}

static const char *g_label, *g_so_pin, *g_user_pin;
static CK_SLOT_ID g_slot;

static CK_RV login(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_USER_TYPE who, const char *pin)
{
    return fl->C_Login(h, who, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static int make_token(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE *out)
{
    CK_SLOT_ID free_slot;
    if (!check("token.free_slot", find_slot(fl, NULL, &free_slot), "no slot without a token"))
        return 0;
    CK_UTF8CHAR label[32];
    pad32(label, g_label);
    if (!expect("token.init_token",
                fl->C_InitToken(free_slot, (CK_UTF8CHAR_PTR)g_so_pin, strlen(g_so_pin), label), CKR_OK))
        return 0;
    if (!check("token.found_by_label", find_slot(fl, g_label, &g_slot), "no token labelled %s", g_label))
        return 0;
    CK_SESSION_HANDLE h;
    if (!expect("token.open_session",
                fl->C_OpenSession(g_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h), CKR_OK))
        return 0;
    expect("null.login_pin", fl->C_Login(h, CKU_SO, NULL, 8), CKR_ARGUMENTS_BAD);
    if (!expect("token.so_login", login(fl, h, CKU_SO, g_so_pin), CKR_OK))
        return 0;
    expect("null.init_pin", fl->C_InitPIN(h, NULL, 4), CKR_ARGUMENTS_BAD);
    if (!expect("token.init_pin", fl->C_InitPIN(h, (CK_UTF8CHAR_PTR)g_user_pin, strlen(g_user_pin)), CKR_OK))
        return 0;
    expect("token.so_logout", fl->C_Logout(h), CKR_OK);
    if (!expect("token.user_login", login(fl, h, CKU_USER, g_user_pin), CKR_OK))
        return 0;
    *out = h;
    return 1;
}

/* ---- section: keys ------------------------------------------------------------------------ */

static CK_BBOOL T = CK_TRUE, F = CK_FALSE;
static const char AES_LABEL[] = "abi-check-aes";

static CK_RV gen_aes(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *key)
{
    CK_MECHANISM m = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &F, 1}, {CKA_SENSITIVE, &T, 1},
        {CKA_EXTRACTABLE, &F, 1}, {CKA_ENCRYPT, &T, 1}, {CKA_DECRYPT, &T, 1},
        {CKA_LABEL, (void *)AES_LABEL, sizeof AES_LABEL - 1},
    };
    return fl->C_GenerateKey(h, &m, t, sizeof t / sizeof t[0], key);
}

static CK_RV gen_hmac(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE *key)
{
    CK_MECHANISM m = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_ULONG len = 32;
    CK_ATTRIBUTE t[] = {
        {CKA_VALUE_LEN, &len, sizeof len}, {CKA_TOKEN, &F, 1}, {CKA_SIGN, &T, 1}, {CKA_VERIFY, &T, 1},
    };
    return fl->C_GenerateKey(h, &m, t, sizeof t / sizeof t[0], key);
}

/* ---- section: the length-query convention on data calls (Base §5.2) -------------------- */

static CK_BYTE g_iv[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
static const CK_BYTE PLAIN[20] = "twenty bytes of text";

static void check_encrypt(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    CK_MECHANISM m = {CKM_AES_CBC_PAD, g_iv, sizeof g_iv};
    CK_BYTE ct[64], pt[64];
    CK_ULONG n = 0;
    if (!expect("encrypt.init", fl->C_EncryptInit(h, &m, key), CKR_OK))
        return;
    CK_RV rv = fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, sizeof PLAIN, NULL, &n);
    /* The query may answer "somewhat more" than the exact length (Base §5.2). */
    check("encrypt.length_query", rv == CKR_OK && n >= 32 && n <= sizeof ct, "rv %s, length %lu",
          rv_name(rv), n);
    CK_ULONG need = n;
    n = 1;
    rv = fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, sizeof PLAIN, ct, &n);
    check("encrypt.too_short_buffer", rv == CKR_BUFFER_TOO_SMALL && n >= 32, "rv %s, length %lu",
          rv_name(rv), n);
    n = need <= sizeof ct ? need : sizeof ct;
    rv = fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, sizeof PLAIN, ct, &n);
    check("encrypt.right_buffer", rv == CKR_OK && n == 32, "rv %s, length %lu", rv_name(rv), n);
    CK_ULONG ct_len = n;
    CK_BYTE first[32];
    memcpy(first, ct, 32);
    CK_ULONG again = sizeof ct;
    expect("encrypt.finished", fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, sizeof PLAIN, ct + 32, &again),
           CKR_OPERATION_NOT_INITIALIZED);

    CK_ULONG pn = sizeof pt;
    rv = fl->C_DecryptInit(h, &m, key);
    if (rv == CKR_OK)
        rv = fl->C_Decrypt(h, ct, ct_len, pt, &pn);
    check("encrypt.decrypts", rv == CKR_OK && pn == sizeof PLAIN && memcmp(pt, PLAIN, pn) == 0,
          "rv %s, length %lu", rv_name(rv), pn);

    /* Multi-part: C_EncryptFinal follows the same convention. */
    CK_ULONG un = sizeof ct;
    rv = fl->C_EncryptInit(h, &m, key);
    if (rv == CKR_OK)
        rv = fl->C_EncryptUpdate(h, (CK_BYTE_PTR)PLAIN, sizeof PLAIN, ct, &un);
    if (!expect("encrypt_final.update", rv, CKR_OK))
        return;
    n = 0;
    rv = fl->C_EncryptFinal(h, NULL, &n);
    check("encrypt_final.length_query", rv == CKR_OK && n >= 32 - un, "rv %s, length %lu", rv_name(rv), n);
    need = n;
    if (need > 0) {
        n = 0;
        rv = fl->C_EncryptFinal(h, ct + un, &n);
        check("encrypt_final.too_short_buffer", rv == CKR_BUFFER_TOO_SMALL && n >= 32 - un,
              "rv %s, length %lu", rv_name(rv), n);
    }
    n = need;
    rv = fl->C_EncryptFinal(h, ct + un, &n);
    check("encrypt_final.right_buffer", rv == CKR_OK && un + n == 32 && memcmp(ct, first, 32) == 0,
          "rv %s, total length %lu, same as one-shot %d", rv_name(rv), un + n, memcmp(ct, first, 32) == 0);
    n = sizeof ct - 32;
    expect("encrypt_final.finished", fl->C_EncryptFinal(h, ct + 32, &n), CKR_OPERATION_NOT_INITIALIZED);
}

static void check_sign(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    CK_MECHANISM m = {CKM_SHA256_HMAC, NULL, 0};
    CK_BYTE data[] = "message to sign", sig[64], sig2[64];
    CK_ULONG dn = sizeof data - 1, n = 0;
    if (!expect("sign.init", fl->C_SignInit(h, &m, key), CKR_OK))
        return;
    CK_RV rv = fl->C_Sign(h, data, dn, NULL, &n);
    check("sign.length_query", rv == CKR_OK && n >= 32 && n <= sizeof sig, "rv %s, length %lu", rv_name(rv), n);
    CK_ULONG need = n;
    n = 31;
    rv = fl->C_Sign(h, data, dn, sig, &n);
    check("sign.too_short_buffer", rv == CKR_BUFFER_TOO_SMALL && n >= 32, "rv %s, length %lu", rv_name(rv), n);
    n = need <= sizeof sig ? need : sizeof sig;
    rv = fl->C_Sign(h, data, dn, sig, &n);
    check("sign.right_buffer", rv == CKR_OK && n == 32, "rv %s, length %lu", rv_name(rv), n);
    CK_ULONG again = sizeof sig2;
    expect("sign.finished", fl->C_Sign(h, data, dn, sig2, &again), CKR_OPERATION_NOT_INITIALIZED);
    rv = fl->C_VerifyInit(h, &m, key);
    if (rv == CKR_OK)
        rv = fl->C_Verify(h, data, dn, sig, 32);
    expect("sign.verifies", rv, CKR_OK);

    rv = fl->C_SignInit(h, &m, key);
    if (rv == CKR_OK)
        rv = fl->C_SignUpdate(h, data, 7);
    if (rv == CKR_OK)
        rv = fl->C_SignUpdate(h, data + 7, dn - 7);
    if (!expect("sign_final.update", rv, CKR_OK))
        return;
    n = 0;
    rv = fl->C_SignFinal(h, NULL, &n);
    check("sign_final.length_query", rv == CKR_OK && n >= 32 && n <= sizeof sig2, "rv %s, length %lu",
          rv_name(rv), n);
    need = n;
    n = 8;
    rv = fl->C_SignFinal(h, sig2, &n);
    check("sign_final.too_short_buffer", rv == CKR_BUFFER_TOO_SMALL && n >= 32, "rv %s, length %lu",
          rv_name(rv), n);
    n = need <= sizeof sig2 ? need : sizeof sig2;
    rv = fl->C_SignFinal(h, sig2, &n);
    check("sign_final.right_buffer", rv == CKR_OK && n == 32 && memcmp(sig, sig2, 32) == 0,
          "rv %s, length %lu, same MAC as one-shot %d", rv_name(rv), n, memcmp(sig, sig2, 32) == 0);
    n = sizeof sig2;
    expect("sign_final.finished", fl->C_SignFinal(h, sig2, &n), CKR_OPERATION_NOT_INITIALIZED);
}

static void check_digest(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h)
{
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_BYTE md[64];
    CK_ULONG n = 0;
    if (!expect("digest.init", fl->C_DigestInit(h, &m), CKR_OK))
        return;
    CK_RV rv = fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, NULL, &n);
    check("digest.length_query", rv == CKR_OK && n >= 32 && n <= sizeof md, "rv %s, length %lu", rv_name(rv), n);
    CK_ULONG need = n;
    n = 16;
    rv = fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, md, &n);
    check("digest.too_short_buffer", rv == CKR_BUFFER_TOO_SMALL && n >= 32, "rv %s, length %lu", rv_name(rv), n);
    n = need <= sizeof md ? need : sizeof md;
    rv = fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, md, &n);
    check("digest.right_buffer", rv == CKR_OK && n == 32 && memcmp(md, SHA256_ABC, 32) == 0,
          "rv %s, length %lu, correct %d", rv_name(rv), n, memcmp(md, SHA256_ABC, 32) == 0);
    n = sizeof md;
    expect("digest.finished", fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, md, &n), CKR_OPERATION_NOT_INITIALIZED);

    rv = fl->C_DigestInit(h, &m);
    if (rv == CKR_OK)
        rv = fl->C_DigestUpdate(h, (CK_BYTE_PTR)"a", 1);
    if (rv == CKR_OK)
        rv = fl->C_DigestUpdate(h, (CK_BYTE_PTR)"bc", 2);
    if (!expect("digest_final.update", rv, CKR_OK))
        return;
    n = 0;
    rv = fl->C_DigestFinal(h, NULL, &n);
    check("digest_final.length_query", rv == CKR_OK && n >= 32 && n <= sizeof md, "rv %s, length %lu",
          rv_name(rv), n);
    need = n;
    n = 31;
    rv = fl->C_DigestFinal(h, md, &n);
    check("digest_final.too_short_buffer", rv == CKR_BUFFER_TOO_SMALL && n >= 32, "rv %s, length %lu",
          rv_name(rv), n);
    memset(md, 0, sizeof md);
    n = need <= sizeof md ? need : sizeof md;
    rv = fl->C_DigestFinal(h, md, &n);
    check("digest_final.right_buffer", rv == CKR_OK && n == 32 && memcmp(md, SHA256_ABC, 32) == 0,
          "rv %s, length %lu", rv_name(rv), n);
    n = sizeof md;
    expect("digest_final.finished", fl->C_DigestFinal(h, md, &n), CKR_OPERATION_NOT_INITIALIZED);
}

/* ---- section: C_GetAttributeValue's per-attribute rules (Base §5.7) --------------------- */

static void check_attributes(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE key)
{
    CK_ULONG cls = 0xAAAA, vlen = 0xAAAA;
    CK_BYTE value[64], junk[16], label[2];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_VALUE, value, sizeof value},          /* sensitive */
        {CKA_NOT_A_TYPE, junk, sizeof junk},       /* invalid type */
        {CKA_LABEL, label, sizeof label},          /* too short for "abi-check-aes" */
        {CKA_VALUE_LEN, &vlen, sizeof vlen},
    };
    CK_RV rv = fl->C_GetAttributeValue(h, key, t, 5);
    check("attrs.mixed_return_code",
          rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_BUFFER_TOO_SMALL,
          "got %s", rv_name(rv));
    check("attrs.mixed_readable_filled",
          t[0].ulValueLen == sizeof cls && cls == CKO_SECRET_KEY && t[4].ulValueLen == sizeof vlen && vlen == 32,
          "CKA_CLASS len %lu value %lu, CKA_VALUE_LEN len %lu value %lu",
          t[0].ulValueLen, cls, t[4].ulValueLen, vlen);
    check("attrs.mixed_sensitive_unavailable", t[1].ulValueLen == CK_UNAVAILABLE_INFORMATION,
          "CKA_VALUE ulValueLen %lu", t[1].ulValueLen);
    check("attrs.mixed_invalid_type_unavailable", t[2].ulValueLen == CK_UNAVAILABLE_INFORMATION,
          "invalid type ulValueLen %lu", t[2].ulValueLen);
    check("attrs.mixed_too_short_unavailable", t[3].ulValueLen == CK_UNAVAILABLE_INFORMATION,
          "CKA_LABEL ulValueLen %lu", t[3].ulValueLen);

    CK_ATTRIBUTE one = {CKA_VALUE, value, sizeof value};
    expect("attrs.sensitive_alone", fl->C_GetAttributeValue(h, key, &one, 1), CKR_ATTRIBUTE_SENSITIVE);
    one = (CK_ATTRIBUTE){CKA_NOT_A_TYPE, junk, sizeof junk};
    expect("attrs.invalid_type_alone", fl->C_GetAttributeValue(h, key, &one, 1), CKR_ATTRIBUTE_TYPE_INVALID);
    one = (CK_ATTRIBUTE){CKA_LABEL, label, sizeof label};
    rv = fl->C_GetAttributeValue(h, key, &one, 1);
    check("attrs.too_short_alone", rv == CKR_BUFFER_TOO_SMALL && one.ulValueLen == CK_UNAVAILABLE_INFORMATION,
          "rv %s, ulValueLen %lu", rv_name(rv), one.ulValueLen);
    one = (CK_ATTRIBUTE){CKA_LABEL, NULL, 0};
    rv = fl->C_GetAttributeValue(h, key, &one, 1);
    check("attrs.length_query", rv == CKR_OK && one.ulValueLen == sizeof AES_LABEL - 1,
          "rv %s, ulValueLen %lu", rv_name(rv), one.ulValueLen);
    CK_BYTE full[32];
    one = (CK_ATTRIBUTE){CKA_LABEL, full, sizeof full};
    rv = fl->C_GetAttributeValue(h, key, &one, 1);
    check("attrs.label_read", rv == CKR_OK && one.ulValueLen == sizeof AES_LABEL - 1 &&
          memcmp(full, AES_LABEL, sizeof AES_LABEL - 1) == 0, "rv %s, ulValueLen %lu", rv_name(rv),
          one.ulValueLen);
}

/* ---- section: invalid and stale handles ------------------------------------------------- */

static void check_handles(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hmac_key)
{
    CK_SESSION_INFO si;
    CK_ULONG cls;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof cls};
    CK_MECHANISM aes = {CKM_AES_CBC_PAD, g_iv, sizeof g_iv};
    CK_MECHANISM hmac = {CKM_SHA256_HMAC, NULL, 0};

    expect("handles.session_invalid", fl->C_GetSessionInfo(BAD_HANDLE, &si), CKR_SESSION_HANDLE_INVALID);
    expect("handles.session_zero", fl->C_GetSessionInfo(0, &si), CKR_SESSION_HANDLE_INVALID);
    CK_SESSION_HANDLE stale;
    if (expect("handles.open_second_session",
               fl->C_OpenSession(g_slot, CKF_SERIAL_SESSION, NULL, NULL, &stale), CKR_OK)) {
        expect("handles.close_second_session", fl->C_CloseSession(stale), CKR_OK);
        expect("handles.session_stale", fl->C_GetSessionInfo(stale, &si), CKR_SESSION_HANDLE_INVALID);
        expect("handles.session_stale_close", fl->C_CloseSession(stale), CKR_SESSION_HANDLE_INVALID);
        CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
        expect("handles.session_stale_digest_init", fl->C_DigestInit(stale, &sha), CKR_SESSION_HANDLE_INVALID);
    }

    expect("handles.object_invalid", fl->C_GetAttributeValue(h, BAD_HANDLE, &t, 1), CKR_OBJECT_HANDLE_INVALID);
    expect("handles.object_zero", fl->C_GetAttributeValue(h, 0, &t, 1), CKR_OBJECT_HANDLE_INVALID);
    CK_ULONG data_cls = CKO_DATA;
    CK_ATTRIBUTE dt[] = {{CKA_CLASS, &data_cls, sizeof data_cls}, {CKA_TOKEN, &F, 1},
                         {CKA_VALUE, (void *)"x", 1}};
    CK_OBJECT_HANDLE obj;
    if (expect("handles.create_object", fl->C_CreateObject(h, dt, 3, &obj), CKR_OK)) {
        expect("handles.destroy_object", fl->C_DestroyObject(h, obj), CKR_OK);
        expect("handles.object_stale", fl->C_GetAttributeValue(h, obj, &t, 1), CKR_OBJECT_HANDLE_INVALID);
        expect("handles.object_stale_destroy", fl->C_DestroyObject(h, obj), CKR_OBJECT_HANDLE_INVALID);
    }

    expect("handles.key_invalid_encrypt", fl->C_EncryptInit(h, &aes, BAD_HANDLE), CKR_KEY_HANDLE_INVALID);
    expect("handles.key_invalid_sign", fl->C_SignInit(h, &hmac, BAD_HANDLE), CKR_KEY_HANDLE_INVALID);
    CK_OBJECT_HANDLE k;
    if (expect("handles.generate_key", gen_aes(fl, h, &k), CKR_OK)) {
        expect("handles.destroy_key", fl->C_DestroyObject(h, k), CKR_OK);
        expect("handles.key_stale_encrypt", fl->C_EncryptInit(h, &aes, k), CKR_KEY_HANDLE_INVALID);
        expect("handles.key_stale_decrypt", fl->C_DecryptInit(h, &aes, k), CKR_KEY_HANDLE_INVALID);
    }
    (void)hmac_key;
}

/* ---- section: NULL output pointers -> CKR_ARGUMENTS_BAD, never a crash ------------------- */

static void check_nulls(CK_FUNCTION_LIST_PTR fl, CK_SESSION_HANDLE h, CK_OBJECT_HANDLE aes_key,
                        CK_OBJECT_HANDLE hmac_key)
{
    CK_ULONG n = 4, cls = CKO_DATA;
    CK_BYTE buf[64];
    CK_OBJECT_HANDLE o, o2;
    CK_MECHANISM aes = {CKM_AES_CBC_PAD, g_iv, sizeof g_iv};
    CK_MECHANISM hmac = {CKM_SHA256_HMAC, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM gen = {CKM_AES_KEY_GEN, NULL, 0};
    CK_MECHANISM wrap = {CKM_AES_KEY_WRAP, NULL, 0};
    CK_ATTRIBUTE dt[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_TOKEN, &F, 1}, {CKA_VALUE, (void *)"x", 1}};
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE kt[] = {{CKA_VALUE_LEN, &len32, sizeof len32}, {CKA_TOKEN, &F, 1}};

    expect("null.get_slot_list_count", fl->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("null.get_mechanism_list_count", fl->C_GetMechanismList(g_slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("null.get_mechanism_info", fl->C_GetMechanismInfo(g_slot, CKM_SHA256, NULL), CKR_ARGUMENTS_BAD);
    expect("null.open_session_handle",
           fl->C_OpenSession(g_slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    expect("null.get_session_info", fl->C_GetSessionInfo(h, NULL), CKR_ARGUMENTS_BAD);
    expect("null.set_pin_old", fl->C_SetPIN(h, NULL, 4, (CK_UTF8CHAR_PTR)"4321", 4), CKR_ARGUMENTS_BAD);
    expect("null.create_object_template", fl->C_CreateObject(h, NULL, 3, &o), CKR_ARGUMENTS_BAD);
    expect("null.create_object_handle", fl->C_CreateObject(h, dt, 3, NULL), CKR_ARGUMENTS_BAD);
    expect("null.copy_object_handle", fl->C_CopyObject(h, aes_key, NULL, 0, NULL), CKR_ARGUMENTS_BAD);
    expect("null.get_object_size", fl->C_GetObjectSize(h, aes_key, NULL), CKR_ARGUMENTS_BAD);
    expect("null.get_attribute_value_template", fl->C_GetAttributeValue(h, aes_key, NULL, 1), CKR_ARGUMENTS_BAD);
    expect("null.set_attribute_value_template", fl->C_SetAttributeValue(h, aes_key, NULL, 1), CKR_ARGUMENTS_BAD);
    expect("null.find_objects_init_template", fl->C_FindObjectsInit(h, NULL, 1), CKR_ARGUMENTS_BAD);
    if (expect("null.find_objects_init_empty", fl->C_FindObjectsInit(h, NULL, 0), CKR_OK)) {
        expect("null.find_objects_handles", fl->C_FindObjects(h, NULL, 1, &n), CKR_ARGUMENTS_BAD);
        expect("null.find_objects_count", fl->C_FindObjects(h, &o, 1, NULL), CKR_ARGUMENTS_BAD);
        fl->C_FindObjectsFinal(h);
    }
    expect("null.encrypt_init_mechanism", fl->C_EncryptInit(h, NULL, aes_key), CKR_ARGUMENTS_BAD);
    if (fl->C_EncryptInit(h, &aes, aes_key) == CKR_OK) {
        expect("null.encrypt_input", fl->C_Encrypt(h, NULL, 20, buf, &n), CKR_ARGUMENTS_BAD);
        /* C_Encrypt ends the operation on any error but BUFFER_TOO_SMALL (Base, C_Encrypt). */
        n = sizeof buf;
        expect("null.encrypt_error_ends_operation", fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, 20, buf, &n),
               CKR_OPERATION_NOT_INITIALIZED);
    }
    if (fl->C_EncryptInit(h, &aes, aes_key) == CKR_OK) {
        expect("null.encrypt_output_length", fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, 20, buf, NULL),
               CKR_ARGUMENTS_BAD);
        n = sizeof buf;
        if (fl->C_Encrypt(h, (CK_BYTE_PTR)PLAIN, 20, buf, &n) != CKR_OPERATION_NOT_INITIALIZED)
            fl->C_EncryptFinal(h, buf, &n);    /* leave no operation behind */
    }
    expect("null.decrypt_init_mechanism", fl->C_DecryptInit(h, NULL, aes_key), CKR_ARGUMENTS_BAD);
    expect("null.digest_init_mechanism", fl->C_DigestInit(h, NULL), CKR_ARGUMENTS_BAD);
    if (fl->C_DigestInit(h, &sha) == CKR_OK) {
        expect("null.digest_output_length", fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, buf, NULL), CKR_ARGUMENTS_BAD);
        n = sizeof buf;
        if (fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, buf, &n) != CKR_OPERATION_NOT_INITIALIZED)
            n = 0;
    }
    expect("null.sign_init_mechanism", fl->C_SignInit(h, NULL, hmac_key), CKR_ARGUMENTS_BAD);
    if (fl->C_SignInit(h, &hmac, hmac_key) == CKR_OK) {
        fl->C_SignUpdate(h, (CK_BYTE_PTR)"abc", 3);
        expect("null.sign_final_length", fl->C_SignFinal(h, buf, NULL), CKR_ARGUMENTS_BAD);
        n = sizeof buf;
        if (fl->C_SignFinal(h, buf, &n) != CKR_OPERATION_NOT_INITIALIZED)
            n = 0;
    }
    expect("null.verify_init_mechanism", fl->C_VerifyInit(h, NULL, hmac_key), CKR_ARGUMENTS_BAD);
    if (fl->C_VerifyInit(h, &hmac, hmac_key) == CKR_OK) {
        expect("null.verify_signature", fl->C_Verify(h, (CK_BYTE_PTR)"abc", 3, NULL, 32), CKR_ARGUMENTS_BAD);
        fl->C_Verify(h, (CK_BYTE_PTR)"abc", 3, buf, 32);    /* ends any operation left */
    }
    expect("null.generate_key_mechanism", fl->C_GenerateKey(h, NULL, kt, 2, &o), CKR_ARGUMENTS_BAD);
    expect("null.generate_key_handle", fl->C_GenerateKey(h, &gen, kt, 2, NULL), CKR_ARGUMENTS_BAD);
    expect("null.generate_key_pair_mechanism", fl->C_GenerateKeyPair(h, NULL, NULL, 0, NULL, 0, &o, &o2),
           CKR_ARGUMENTS_BAD);
    expect("null.wrap_key_length", fl->C_WrapKey(h, &wrap, aes_key, hmac_key, buf, NULL), CKR_ARGUMENTS_BAD);
    expect("null.unwrap_key_input", fl->C_UnwrapKey(h, &wrap, aes_key, NULL, 40, kt, 2, &o), CKR_ARGUMENTS_BAD);
    expect("null.derive_key_mechanism", fl->C_DeriveKey(h, NULL, aes_key, kt, 2, &o), CKR_ARGUMENTS_BAD);
    expect("null.generate_random_buffer", fl->C_GenerateRandom(h, NULL, 16), CKR_ARGUMENTS_BAD);
}

/* ---- section: fork() while another thread is busy in the module ------------------------ */

struct busy {
    CK_FUNCTION_LIST_PTR fl;
    CK_SESSION_HANDLE h;
    volatile int stop;
    volatile long done, wrong;
};

/* Alternates a known-answer digest with a 1 MiB one: a long call keeps the module busy
 * (inside its locks) when the main thread forks. */
static void *busy_thread(void *arg)
{
    struct busy *b = arg;
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_BYTE *big = calloc(1, 1 << 20);
    while (!b->stop) {
        CK_BYTE md[32];
        CK_ULONG n = sizeof md;
        CK_RV rv = b->fl->C_DigestInit(b->h, &m);
        if (rv == CKR_OK)
            rv = b->fl->C_Digest(b->h, (CK_BYTE_PTR)"abc", 3, md, &n);
        if (rv != CKR_OK || n != 32 || memcmp(md, SHA256_ABC, 32) != 0)
            b->wrong++;
        n = sizeof md;
        rv = b->fl->C_DigestInit(b->h, &m);
        if (rv == CKR_OK)
            rv = b->fl->C_Digest(b->h, big, 1 << 20, md, &n);
        if (rv != CKR_OK || n != 32)
            b->wrong++;
        b->done++;
    }
    free(big);
    return NULL;
}

static int digest_once(CK_FUNCTION_LIST_PTR fl, CK_SLOT_ID slot, CK_RV *out_rv)
{
    CK_SESSION_HANDLE h;
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_BYTE md[32];
    CK_ULONG n = sizeof md;
    CK_RV rv = fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &h);
    if (rv == CKR_OK) {
        rv = fl->C_DigestInit(h, &m);
        if (rv == CKR_OK)
            rv = fl->C_Digest(h, (CK_BYTE_PTR)"abc", 3, md, &n);
        fl->C_CloseSession(h);
    }
    *out_rv = rv;
    return rv == CKR_OK && n == 32 && memcmp(md, SHA256_ABC, 32) == 0;
}

/* The child's part: results go to the parent through `fd`, one "name ok detail" line each. */
static void child_report(int fd, const char *name, int ok, const char *detail)
{
    char line[256];
    int len = snprintf(line, sizeof line, "%s %d %s\n", name, ok ? 1 : 0, detail);
    if (write(fd, line, (size_t)len) < 0)
        _exit(3);
}

static void fork_child(CK_FUNCTION_LIST_PTR fl, int fd)
{
    char d[128];
    CK_INFO ci;
    CK_RV rv;
    alarm(20);   /* a deadlocked child dies rather than hanging the run */
    rv = fl->C_GetInfo(&ci);
    snprintf(d, sizeof d, "C_GetInfo before C_Initialize: %s", rv_name(rv));
    child_report(fd, "fork.child_not_initialized", rv == CKR_CRYPTOKI_NOT_INITIALIZED, d);
    rv = fl->C_Initialize(NULL);
    snprintf(d, sizeof d, "C_Initialize: %s", rv_name(rv));
    child_report(fd, "fork.child_initialize", rv == CKR_OK, d);
    int ok = digest_once(fl, g_slot, &rv);
    snprintf(d, sizeof d, "open session + digest: %s", rv_name(rv));
    child_report(fd, "fork.child_digest", ok, d);
    rv = fl->C_Finalize(NULL);
    snprintf(d, sizeof d, "C_Finalize: %s", rv_name(rv));
    child_report(fd, "fork.child_finalize", rv == CKR_OK, d);
    _exit(0);
}

#ifndef N_FORKS
#define N_FORKS 4
#endif
#define N_CHILD_CHECKS 4
static const char *CHILD_CHECKS[N_CHILD_CHECKS] = {
    "fork.child_not_initialized", "fork.child_initialize", "fork.child_digest", "fork.child_finalize",
};

static void wait_progress(struct busy *b, long from)
{
    for (int i = 0; i < 20000 && b->done <= from; i++)
        usleep(500);
}

static void check_fork(CK_FUNCTION_LIST_PTR fl)
{
    struct busy b = {fl, 0, 0, 0, 0};
    if (!expect("fork.busy_session", fl->C_OpenSession(g_slot, CKF_SERIAL_SESSION, NULL, NULL, &b.h), CKR_OK))
        return;
    pthread_t th;
    pthread_create(&th, NULL, busy_thread, &b);
    wait_progress(&b, 0);

    int child_ok[N_CHILD_CHECKS], child_seen[N_CHILD_CHECKS];
    char child_detail[N_CHILD_CHECKS][160];
    for (int i = 0; i < N_CHILD_CHECKS; i++) {
        child_ok[i] = 1;
        child_seen[i] = 0;
        child_detail[i][0] = '\0';
    }
    int exited_ok = 1, forks = 0;
    char exit_detail[160] = "";
    for (int k = 0; k < N_FORKS; k++) {
        wait_progress(&b, b.done);
        int p[2];
        if (pipe(p) != 0) {
            check("fork.pipe", 0, "%s", strerror(errno));
            break;
        }
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            fork_child(fl, p[1]);
        }
        close(p[1]);
        char text[2048];
        size_t used = 0;
        ssize_t got;
        while ((got = read(p[0], text + used, sizeof text - 1 - used)) > 0)
            used += (size_t)got;
        text[used] = '\0';
        close(p[0]);
        int status = 0;
        waitpid(pid, &status, 0);
        int clean = WIFEXITED(status) && WEXITSTATUS(status) == 0;
        if (!clean && exited_ok) {
            exited_ok = 0;
            snprintf(exit_detail, sizeof exit_detail, "child %d: %s %d%s", k,
                     WIFSIGNALED(status) ? "killed by signal" : "exit status",
                     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
                     WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (deadlocked)" : "");
        }
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
            char name[64];
            int ok, off = 0;
            if (sscanf(line, "%63s %d %n", name, &ok, &off) < 2)
                continue;
            for (int i = 0; i < N_CHILD_CHECKS; i++) {
                if (strcmp(name, CHILD_CHECKS[i]) != 0)
                    continue;
                child_seen[i]++;
                if (!ok && child_ok[i]) {
                    child_ok[i] = 0;
                    snprintf(child_detail[i], sizeof child_detail[i], "child %d: %s", k, line + off);
                }
            }
        }
        forks++;
        if (!clean)
            break;      /* one deadlocked child is enough to know */
    }
    for (int i = 0; i < N_CHILD_CHECKS; i++)
        check(CHILD_CHECKS[i], child_ok[i] && forks > 0 && child_seen[i] == forks, "%s (reported by %d of %d children)",
              child_detail[i], child_seen[i], forks);
    check("fork.children_exit_cleanly", exited_ok, "%s", exit_detail);

    long before = b.done;
    wait_progress(&b, before);
    b.stop = 1;
    pthread_join(th, NULL);
    check("fork.parent_thread_kept_working", b.done > before && b.wrong == 0,
          "%ld digests, %ld after the forks, %ld wrong", b.done, b.done - before, b.wrong);
    CK_RV rv;
    int ok = digest_once(fl, g_slot, &rv);
    check("fork.parent_works_after", ok, "open session + digest: %s", rv_name(rv));
    fl->C_CloseSession(b.h);
}

/* ---- main ----------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 5) {
        fprintf(stderr, "usage: %s MODULE_PATH [TOKEN_LABEL SO_PIN USER_PIN]\n", argv[0]);
        return 2;
    }
    char label[40];
    snprintf(label, sizeof label, "abi-%ld-%d", (long)time(NULL) % 100000, (int)getpid());
    g_label = argc == 5 ? argv[2] : label;
    g_so_pin = argc == 5 ? argv[3] : "12345678";
    g_user_pin = argc == 5 ? argv[4] : "1234";
    setvbuf(stdout, NULL, _IOLBF, 0);

    void *handle;
    CK_FUNCTION_LIST_PTR fl = load(argv[1], &handle, "load", 1);
    if (fl == NULL)
        goto done;
    check_function_list(fl);
    check_initialize(fl);
    check_info(fl);

    CK_SESSION_HANDLE h;
    if (make_token(fl, &h)) {
        CK_OBJECT_HANDLE aes_key = 0, hmac_key = 0;
        int have_aes = expect("keys.generate_aes", gen_aes(fl, h, &aes_key), CKR_OK);
        int have_hmac = expect("keys.generate_hmac", gen_hmac(fl, h, &hmac_key), CKR_OK);
        if (have_aes) {
            check_encrypt(fl, h, aes_key);
            check_attributes(fl, h, aes_key);
        }
        if (have_hmac)
            check_sign(fl, h, hmac_key);
        check_digest(fl, h);
        check_handles(fl, h, hmac_key);
        if (have_aes && have_hmac)
            check_nulls(fl, h, aes_key, hmac_key);
        expect("token.close_session", fl->C_CloseSession(h), CKR_OK);
    }
    CK_INFO ci;
    expect("final.finalize", fl->C_Finalize(NULL), CKR_OK);
    expect("final.after_finalize", fl->C_GetInfo(&ci), CKR_CRYPTOKI_NOT_INITIALIZED);

    /* Unload, load again in the same process, and use it again. */
    check("reload.dlclose", dlclose(handle) == 0, "%s", dlerror());
    fl = load(argv[1], &handle, "reload", 0);
    if (fl == NULL)
        goto done;
    expect("reload.not_initialized", fl->C_GetInfo(&ci), CKR_CRYPTOKI_NOT_INITIALIZED);
    if (expect("reload.initialize", fl->C_Initialize(NULL), CKR_OK)) {
        CK_SLOT_ID slot;
        if (check("reload.token_visible", find_slot(fl, g_label, &slot), "no token labelled %s", g_label)) {
            g_slot = slot;
            CK_RV rv;
            int ok = digest_once(fl, slot, &rv);
            check("reload.digest", ok, "open session + digest: %s", rv_name(rv));
            check_fork(fl);
        }
        expect("reload.finalize", fl->C_Finalize(NULL), CKR_OK);
    }
    dlclose(handle);

done:
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed > 0;
}
