/* libhspkcs11.so: the C side of the PKCS#11 ABI.
 *
 * Each C_* entry point checks pointers and lengths, crosses into Python once (an
 * `extern "Python"` callback declared in csrc/build_shim.py, defined by
 * hspkcs11/abi/bridge.py), and applies the length-query convention to what Python
 * returned (PKCS#11 v2.40 Base §5.2). It holds no policy. DESIGN.md "The shim" explains
 * the start-up sequence; every step of it guards a failure seen in a prototype.
 *
 * This file is #included by the source that cffi generates, after pkcs11.h, shim.h, the
 * generated hs_consts.h and the prototypes of the py_* callbacks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HS_EXPORT __attribute__((visibility("default")))

/* ---- starting Python ------------------------------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static int g_ready;               /* the engine imported and answered */
static PyGILState_STATE g_fork_gil;

static void hs_log(const char *what, const char *detail)
{
    fprintf(stderr, "hspkcs11: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
}

/* The venv's python: $HSPKCS11_PYTHON if set (and then only it), else the nearest
 * pyvenv.cfg above this library, else the interpreter that built it. */
static int hs_find_python(char *exe, size_t cap)
{
    const char *env = getenv("HSPKCS11_PYTHON");
    if (env && *env) {
        snprintf(exe, cap, "%s", env);
        return access(exe, X_OK) == 0 ? 0 : -1;
    }
    Dl_info info;
    if (dladdr((void *)&hs_find_python, &info) && info.dli_fname) {
        char dir[PATH_MAX];
        if (realpath(info.dli_fname, dir)) {
            char *slash;
            while ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
                *slash = '\0';
                char cfg[PATH_MAX + 16];
                snprintf(cfg, sizeof cfg, "%s/pyvenv.cfg", dir);
                if (access(cfg, R_OK) == 0) {
                    snprintf(exe, cap, "%s/bin/python3", dir);
                    if (access(exe, X_OK) == 0)
                        return 0;
                }
            }
        }
    }
    snprintf(exe, cap, "%s", HS_BUILD_PYTHON);
    return access(exe, X_OK) == 0 ? 0 : -1;
}

/* Around fork(), as os.fork() does: hold the GIL so no other thread is inside Python,
 * and let the child re-initialise the runtime's locks. */
static void hs_fork_prepare(void) { g_fork_gil = PyGILState_Ensure(); PyOS_BeforeFork(); }
static void hs_fork_parent(void) { PyOS_AfterFork_Parent(); PyGILState_Release(g_fork_gil); }
static void hs_fork_child(void) { PyOS_AfterFork_Child(); PyGILState_Release(g_fork_gil); }

/* An isolated interpreter ignores the environment, PYTHONMALLOC too; honour that one,
 * so that a memory checker run (valgrind with PYTHONMALLOC=malloc, tests/test_badinput.py)
 * sees each Python allocation and not only pymalloc's arenas. */
static int hs_preinit_python(void)
{
    static const struct { const char *name; PyMemAllocatorName allocator; } ALLOCATORS[] = {
        {"malloc", PYMEM_ALLOCATOR_MALLOC}, {"malloc_debug", PYMEM_ALLOCATOR_MALLOC_DEBUG},
        {"pymalloc", PYMEM_ALLOCATOR_PYMALLOC}, {"debug", PYMEM_ALLOCATOR_DEBUG},
    };
    PyPreConfig pre;
    PyPreConfig_InitIsolatedConfig(&pre);
    const char *wanted = getenv("PYTHONMALLOC");
    for (size_t i = 0; wanted && i < sizeof ALLOCATORS / sizeof ALLOCATORS[0]; i++)
        if (strcmp(wanted, ALLOCATORS[i].name) == 0)
            pre.allocator = ALLOCATORS[i].allocator;
    PyStatus st = Py_PreInitialize(&pre);
    if (PyStatus_Exception(st)) {
        hs_log("cannot pre-initialize Python", st.err_msg);
        return -1;
    }
    return 0;
}

static int hs_start_python(void)
{
    /* A C host dlopen()ed us RTLD_LOCAL: make libpython's symbols global, or extension
     * modules (_cffi_backend, cryptography's) fail to resolve Py* symbols. */
    Dl_info info;
    if (dladdr((void *)&Py_IsInitialized, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_GLOBAL | RTLD_NOLOAD);

    char exe[PATH_MAX];
    if (hs_find_python(exe, sizeof exe) != 0) {
        hs_log("no Python interpreter found (set HSPKCS11_PYTHON to the venv's python)", exe);
        return -1;
    }
    if (hs_preinit_python() != 0)
        return -1;
    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    PyStatus st = PyConfig_SetBytesString(&config, &config.executable, exe);
    if (!PyStatus_Exception(st))
        st = Py_InitializeFromConfig(&config);
    PyConfig_Clear(&config);
    if (PyStatus_Exception(st)) {
        hs_log("cannot start Python", st.err_msg);
        return -1;
    }
    PyEval_SaveThread();    /* release the GIL: callbacks take it per call */
    pthread_atfork(hs_fork_prepare, hs_fork_parent, hs_fork_child);
    return 0;
}

static void hs_start(void)
{
    if (!Py_IsInitialized() && hs_start_python() != 0)
        return;
    /* cffi returns 0 from a callback whose init code failed: 0 here means "not ready". */
    g_ready = py_Ready() == 1;
    if (!g_ready)
        hs_log("the hspkcs11 engine did not start; every call returns CKR_GENERAL_ERROR", NULL);
}

/* Pin the library: unloading it under a live interpreter would unmap callback code. */
__attribute__((constructor)) static void hs_pin(void)
{
    Dl_info info;
    if (dladdr((void *)&hs_pin, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE | RTLD_NOLOAD);
}

#define READY() do { \
        pthread_once(&g_once, hs_start); \
        if (!g_ready) return HS_CKR_GENERAL_ERROR; \
    } while (0)

/* The process that called C_Initialize (0: none). A child after fork() is not
 * initialised until it calls C_Initialize itself (Base §5.4; DESIGN "fork"). Python
 * keeps the authoritative state; this copy lets C answer CKR_CRYPTOKI_NOT_INITIALIZED
 * before its pointer checks, in the order SoftHSM2 uses. */
static volatile pid_t g_init_pid;

#define INITED() do { \
        READY(); \
        if (g_init_pid != getpid()) return HS_CKR_CRYPTOKI_NOT_INITIALIZED; \
    } while (0)

/* A byte buffer that claims a length must exist. */
#define NEED_BUF(p, n) do { if ((p) == NULL && (n) > 0) return HS_CKR_ARGUMENTS_BAD; } while (0)
#define NEED_PTR(p) do { if ((p) == NULL) return HS_CKR_ARGUMENTS_BAD; } while (0)

/* ---- the length-query convention (Base §5.2) -------------------------------------- */

static CK_ULONG hs_cap(const void *in, CK_ULONG in_len, const void *out, const CK_ULONG *out_len)
{
    if (out_len == NULL || (in == NULL && in_len > 0))
        return HS_CAP_BAD;
    return out == NULL ? HS_CAP_QUERY : *out_len;
}

/* Copy `o` (elem-sized items) to the caller, or report the size it needs. */
static CK_RV hs_deliver(CK_RV rv, const hs_out *o, void *buf, CK_ULONG *count, size_t elem)
{
    if (rv != HS_CKR_OK)
        return rv;
    CK_ULONG n = o->len / elem;
    if (buf == NULL) {
        *count = n;
        return HS_CKR_OK;
    }
    if (*count < n) {
        *count = n;
        return HS_CKR_BUFFER_TOO_SMALL;
    }
    if (o->len)
        memcpy(buf, o->ptr, o->len);
    *count = n;
    return HS_CKR_OK;
}

/* ---- answers kept while nothing changed (issue 7) -----------------------------------
 * Most clients call C_GetAttributeValue and C_WrapKey twice, once for the lengths and
 * once for the values (Base §5.2), and many read the same attributes again and again.
 * An answer is still the answer while nothing it depends on changed: no call of this
 * process that changes objects, sessions or logins has run (g_generation, moved after
 * each such call), and no process wrote to the region or changed its zones or master
 * key (the region's pulse: the head and epoch stamps Python maps, hsm/files.Stamp, and
 * lends us with hs_set_pulse). Each thread keeps its last answer with the stamp it was
 * computed under, and answers the same call again from it without crossing into Python. */

static uint64_t g_generation;
static const uint64_t *volatile g_pulse[2];       /* head, epoch; NULL: no region open */

void hs_set_pulse(const CK_BYTE *head, const CK_BYTE *epoch)
{
    g_pulse[0] = (const uint64_t *)head;
    g_pulse[1] = (const uint64_t *)epoch;
    __atomic_add_fetch(&g_generation, 1, __ATOMIC_ACQ_REL);
}

/* After any call that may change what another call answers. */
static CK_RV hs_changed(CK_RV rv)
{
    __atomic_add_fetch(&g_generation, 1, __ATOMIC_ACQ_REL);
    return rv;
}

typedef struct hs_stamp { uint64_t generation, head, epoch; int valid; } hs_stamp;

static hs_stamp hs_now(void)
{
    hs_stamp t = {__atomic_load_n(&g_generation, __ATOMIC_ACQUIRE), 0, 0, 0};
    const uint64_t *head = g_pulse[0], *epoch = g_pulse[1];
    if (head != NULL && epoch != NULL) {
        t.head = __atomic_load_n(head, __ATOMIC_ACQUIRE);
        t.epoch = __atomic_load_n(epoch, __ATOMIC_ACQUIRE);
        t.valid = 1;
    }
    return t;
}

static int hs_same_stamp(const hs_stamp *a, const hs_stamp *b)
{
    return a->valid && b->valid && a->generation == b->generation && a->head == b->head &&
           a->epoch == b->epoch;
}

enum { HS_MEMO_NONE, HS_MEMO_ATTRS, HS_MEMO_WRAP };
#define HS_MEMO_MAX_ATTRS 32
#define HS_MEMO_MAX_VALUES 4096
#define HS_MEMO_MAX_PARAM 64

typedef struct hs_memo {
    int kind;
    hs_stamp at;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE a, b;                  /* the object; or the wrapping key and the key */
    CK_MECHANISM_TYPE mech;
    CK_ULONG param_len;
    int param_null;
    CK_BYTE param[HS_MEMO_MAX_PARAM];
    CK_ULONG count;
    CK_ULONG types[HS_MEMO_MAX_ATTRS];
    hs_attr_out out[HS_MEMO_MAX_ATTRS];
    CK_ULONG len;
    CK_BYTE values[HS_MEMO_MAX_VALUES];     /* may hold a non-sensitive key value: wiped */
} hs_memo;

static pthread_key_t g_memo_key;
static pthread_once_t g_memo_once = PTHREAD_ONCE_INIT;

static void hs_memo_free(void *m)
{
    explicit_bzero(m, sizeof(hs_memo));
    free(m);
}

static void hs_memo_init(void) { pthread_key_create(&g_memo_key, hs_memo_free); }

/* This thread's memo, or NULL (no memory: calls then simply cross every time). */
static hs_memo *hs_memo_get(void)
{
    pthread_once(&g_memo_once, hs_memo_init);
    hs_memo *m = pthread_getspecific(g_memo_key);
    if (m == NULL && (m = calloc(1, sizeof *m)) != NULL && pthread_setspecific(g_memo_key, m) != 0) {
        free(m);
        m = NULL;
    }
    return m;
}

static int hs_same_mechanism(const hs_memo *m, const CK_MECHANISM *mech)
{
    return m->mech == mech->mechanism && m->param_len == mech->ulParameterLen &&
           m->param_null == (mech->pParameter == NULL) &&
           (m->param_len == 0 || mech->pParameter == NULL || memcmp(m->param, mech->pParameter, m->param_len) == 0);
}

static int hs_memo_keep_mechanism(hs_memo *m, const CK_MECHANISM *mech)
{
    if (mech->ulParameterLen > HS_MEMO_MAX_PARAM)
        return 0;
    m->mech = mech->mechanism;
    m->param_len = mech->ulParameterLen;
    m->param_null = mech->pParameter == NULL;
    if (mech->pParameter != NULL && m->param_len)
        memcpy(m->param, mech->pParameter, m->param_len);
    return 1;
}

static void hs_memo_keep_values(hs_memo *m, const hs_stamp *at, const hs_out *v)
{
    m->at = *at;
    m->len = v->len;
    if (v->len)
        memcpy(m->values, v->ptr, v->len);
}

/* ---- general purpose and slot/token functions --------------------------------------- */

static CK_RV hs_check_init_args(const CK_C_INITIALIZE_ARGS *a)
{
    if (a == NULL)
        return HS_CKR_OK;
    if (a->pReserved != NULL)
        return HS_CKR_ARGUMENTS_BAD;
    int given = (a->CreateMutex != NULL) + (a->DestroyMutex != NULL) +
                (a->LockMutex != NULL) + (a->UnlockMutex != NULL);
    if (given != 0 && given != 4)       /* all four or none (Base §5.4 C_Initialize) */
        return HS_CKR_ARGUMENTS_BAD;
    /* Application mutexes without CKF_OS_LOCKING_OK: we can only lock with our own
     * (Python's) primitives, so we cannot honour them. */
    if (given == 4 && !(a->flags & HS_CKF_OS_LOCKING_OK))
        return HS_CKR_CANT_LOCK;
    return HS_CKR_OK;
}

HS_EXPORT CK_RV C_Initialize(CK_VOID_PTR pInitArgs)
{
    CK_RV rv = hs_check_init_args((const CK_C_INITIALIZE_ARGS *)pInitArgs);
    if (rv != HS_CKR_OK)
        return rv;
    READY();
    rv = hs_changed(py_Initialize(pInitArgs ? ((CK_C_INITIALIZE_ARGS *)pInitArgs)->flags : 0));
    if (rv == HS_CKR_OK)
        g_init_pid = getpid();
    return rv;
}

HS_EXPORT CK_RV C_Finalize(CK_VOID_PTR pReserved)
{
    INITED();
    if (pReserved != NULL)
        return HS_CKR_ARGUMENTS_BAD;
    CK_RV rv = hs_changed(py_Finalize());
    if (rv == HS_CKR_OK)
        g_init_pid = 0;
    return rv;
}

HS_EXPORT CK_RV C_GetInfo(CK_INFO *pInfo)
{
    INITED();
    NEED_PTR(pInfo);
    return py_GetInfo(pInfo);
}

HS_EXPORT CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount)
{
    INITED();
    NEED_PTR(pulCount);
    hs_out o = {0};
    return hs_deliver(py_GetSlotList(tokenPresent, &o), &o, pSlotList, pulCount, sizeof(CK_SLOT_ID));
}

HS_EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO *pInfo)
{
    INITED();
    NEED_PTR(pInfo);
    return py_GetSlotInfo(slotID, pInfo);
}

HS_EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO *pInfo)
{
    INITED();
    NEED_PTR(pInfo);
    return py_GetTokenInfo(slotID, pInfo);
}

HS_EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pList, CK_ULONG_PTR pulCount)
{
    INITED();
    NEED_PTR(pulCount);
    hs_out o = {0};
    return hs_deliver(py_GetMechanismList(slotID, &o), &o, pList, pulCount, sizeof(CK_MECHANISM_TYPE));
}

HS_EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO *pInfo)
{
    INITED();
    NEED_PTR(pInfo);
    return py_GetMechanismInfo(slotID, type, pInfo);
}

HS_EXPORT CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen, CK_UTF8CHAR_PTR pLabel)
{
    INITED();
    NEED_BUF(pPin, ulPinLen);
    NEED_PTR(pLabel);
    return hs_changed(py_InitToken(slotID, pPin, ulPinLen, pLabel));
}

HS_EXPORT CK_RV C_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    INITED();
    NEED_BUF(pPin, ulPinLen);
    return hs_changed(py_InitPIN(h, pPin, ulPinLen));
}

HS_EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pOld, CK_ULONG ulOldLen,
                         CK_UTF8CHAR_PTR pNew, CK_ULONG ulNewLen)
{
    INITED();
    NEED_BUF(pOld, ulOldLen);
    NEED_BUF(pNew, ulNewLen);
    return hs_changed(py_SetPIN(h, pOld, ulOldLen, pNew, ulNewLen));
}

/* ---- sessions -------------------------------------------------------------------- */

HS_EXPORT CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication,
                              CK_NOTIFY Notify, CK_SESSION_HANDLE_PTR phSession)
{
    INITED();
    (void)pApplication;
    (void)Notify;           /* callbacks are optional (Base §5.6); we never call them */
    NEED_PTR(phSession);
    return py_OpenSession(slotID, flags, phSession);
}

HS_EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE h) { INITED(); return hs_changed(py_CloseSession(h)); }
HS_EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slotID) { INITED(); return hs_changed(py_CloseAllSessions(slotID)); }

HS_EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO *pInfo)
{
    INITED();
    NEED_PTR(pInfo);
    return py_GetSessionInfo(h, pInfo);
}

HS_EXPORT CK_RV C_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR pState, CK_ULONG_PTR pulLen)
{
    INITED();
    (void)pState;
    (void)pulLen;
    return py_Unsupported(h);
}

HS_EXPORT CK_RV C_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR pState, CK_ULONG ulLen,
                                    CK_OBJECT_HANDLE hEnc, CK_OBJECT_HANDLE hAuth)
{
    INITED();
    (void)pState; (void)ulLen; (void)hEnc; (void)hAuth;
    return py_Unsupported(h);
}

HS_EXPORT CK_RV C_Login(CK_SESSION_HANDLE h, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen)
{
    INITED();
    NEED_BUF(pPin, ulPinLen);
    return hs_changed(py_Login(h, userType, pPin, ulPinLen));
}

HS_EXPORT CK_RV C_Logout(CK_SESSION_HANDLE h) { INITED(); return hs_changed(py_Logout(h)); }

/* ---- templates, flattened for Python -------------------------------------------------
 * Reading a CK_ATTRIBUTE array field by field through cffi costs about a microsecond an
 * attribute; one flat buffer (layout in shim.h) costs Python one copy. Whether a NULL
 * value is an error is Python's to say: for C_FindObjectsInit it only matches nothing. */

typedef struct hs_flat { CK_BYTE *ptr; CK_ULONG len; CK_BYTE stack[1024]; } hs_flat;

static CK_ULONG hs_value_len(const CK_ATTRIBUTE *a)
{
    return a->pValue == NULL ? 0 : a->ulValueLen;
}

static CK_RV hs_flatten(const CK_ATTRIBUTE *t, CK_ULONG n, hs_flat *f)
{
    const CK_ULONG head = 2 * sizeof(CK_ULONG), limit = (CK_ULONG)1 << 40;
    CK_ULONG need = 0;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ULONG v = hs_value_len(&t[i]);
        if (v > limit || need > limit)      /* no such template fits in memory */
            return HS_CKR_HOST_MEMORY;
        need += head + ((v + 7) & ~(CK_ULONG)7);
    }
    f->len = need;
    f->ptr = need <= sizeof f->stack ? f->stack : malloc(need);
    if (f->ptr == NULL)
        return HS_CKR_HOST_MEMORY;
    CK_BYTE *p = f->ptr;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ULONG v = hs_value_len(&t[i]), padded = (v + 7) & ~(CK_ULONG)7;
        CK_ULONG record[2] = {t[i].type, t[i].pValue == NULL && t[i].ulValueLen ? HS_NULL_VALUE : v};
        memcpy(p, record, head);
        if (v)
            memcpy(p + head, t[i].pValue, v);
        memset(p + head + v, 0, padded - v);
        p += head + padded;
    }
    return HS_CKR_OK;
}

static void hs_flat_free(hs_flat *f)
{
    if (f->ptr != f->stack)
        free(f->ptr);
}

/* Return what `call` (an expression using f.ptr, f.len) returns over a flattened template. */
#define RETURN_WITH_FLAT(f, tmpl, count, call) do { \
        hs_flat f; \
        CK_RV rv_ = hs_flatten((tmpl), (count), &f); \
        if (rv_ == HS_CKR_OK) { rv_ = (call); hs_flat_free(&f); } \
        return rv_; \
    } while (0)

/* ---- objects --------------------------------------------------------------------- */

HS_EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                               CK_OBJECT_HANDLE_PTR phObject)
{
    INITED();
    NEED_BUF(pTemplate, ulCount);
    NEED_PTR(phObject);
    RETURN_WITH_FLAT(f, pTemplate, ulCount, hs_changed(py_CreateObject(h, f.ptr, f.len, phObject)));
}

HS_EXPORT CK_RV C_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                             CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject)
{
    INITED();
    NEED_BUF(pTemplate, ulCount);
    NEED_PTR(phNewObject);
    RETURN_WITH_FLAT(f, pTemplate, ulCount, hs_changed(py_CopyObject(h, hObject, f.ptr, f.len, phNewObject)));
}

HS_EXPORT CK_RV C_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hObject)
{
    INITED();
    return hs_changed(py_DestroyObject(h, hObject));
}

HS_EXPORT CK_RV C_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize)
{
    INITED();
    NEED_PTR(pulSize);
    return py_GetObjectSize(h, hObject, pulSize);
}

/* Per-attribute rules of Base §5.7 C_GetAttributeValue: fill every attribute that can
 * be filled, mark the others CK_UNAVAILABLE_INFORMATION, and return the code of the
 * last problem met (the spec lets any of them be returned). */
static CK_RV hs_fill_attrs(CK_ATTRIBUTE *t, CK_ULONG n, const hs_attr_out *out, const CK_BYTE *values)
{
    CK_RV rv = HS_CKR_OK;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ATTRIBUTE *a = &t[i];
        if (out[i].status != HS_CKR_OK) {
            a->ulValueLen = HS_CK_UNAVAILABLE_INFORMATION;
            rv = out[i].status;
        } else if (a->pValue == NULL) {
            a->ulValueLen = out[i].len;
        } else if (a->ulValueLen < out[i].len) {
            a->ulValueLen = HS_CK_UNAVAILABLE_INFORMATION;
            rv = HS_CKR_BUFFER_TOO_SMALL;
        } else {
            if (out[i].len)
                memcpy(a->pValue, values + out[i].offset, out[i].len);
            a->ulValueLen = out[i].len;
        }
    }
    return rv;
}

HS_EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hObject,
                                    CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    INITED();
    NEED_BUF(pTemplate, ulCount);
    hs_memo *m = hs_memo_get();
    hs_stamp now = hs_now();
    if (m != NULL && m->kind == HS_MEMO_ATTRS && hs_same_stamp(&m->at, &now) && m->session == h &&
        m->a == hObject && ulCount <= HS_MEMO_MAX_ATTRS) {
        /* Any attributes the kept answer holds (a client may ask again for fewer). */
        hs_attr_out kept[HS_MEMO_MAX_ATTRS];
        CK_ULONG i = 0;
        for (; i < ulCount; i++) {
            CK_ULONG j = 0;
            while (j < m->count && m->types[j] != pTemplate[i].type)
                j++;
            if (j == m->count)
                break;
            kept[i] = m->out[j];
        }
        if (i == ulCount)
            return hs_fill_attrs(pTemplate, ulCount, kept, m->values);
    }
    /* Python gets the types as one CK_ULONG array (one read) and answers in `out`
     * and `values`. */
    CK_ULONG stack_types[16], *types = stack_types;
    hs_attr_out stack_out[16], *out = stack_out;
    if (ulCount > 16) {
        types = calloc(ulCount, sizeof *types);
        out = calloc(ulCount, sizeof *out);
        if (types == NULL || out == NULL) {
            free(types);
            free(out);
            return HS_CKR_HOST_MEMORY;
        }
    }
    for (CK_ULONG i = 0; i < ulCount; i++)
        types[i] = pTemplate[i].type;
    hs_out values = {0};
    CK_RV rv = py_GetAttributeValue(h, hObject, types, ulCount, out, &values);
    if (rv == HS_CKR_OK) {
        if (m != NULL && now.valid && ulCount <= HS_MEMO_MAX_ATTRS && values.len <= HS_MEMO_MAX_VALUES) {
            m->kind = HS_MEMO_ATTRS;
            m->session = h;
            m->a = hObject;
            m->count = ulCount;
            memcpy(m->types, types, ulCount * sizeof *types);
            memcpy(m->out, out, ulCount * sizeof *out);
            hs_memo_keep_values(m, &now, &values);
        }
        rv = hs_fill_attrs(pTemplate, ulCount, out, values.ptr);
    }
    if (out != stack_out) {
        free(out);
        free(types);
    }
    return rv;
}

HS_EXPORT CK_RV C_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hObject,
                                    CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    INITED();
    NEED_BUF(pTemplate, ulCount);
    RETURN_WITH_FLAT(f, pTemplate, ulCount, hs_changed(py_SetAttributeValue(h, hObject, f.ptr, f.len)));
}

HS_EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount)
{
    INITED();
    NEED_BUF(pTemplate, ulCount);
    RETURN_WITH_FLAT(f, pTemplate, ulCount, py_FindObjectsInit(h, f.ptr, f.len));
}

HS_EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxCount,
                              CK_ULONG_PTR pulObjectCount)
{
    INITED();
    NEED_BUF(phObject, ulMaxCount);
    NEED_PTR(pulObjectCount);
    return py_FindObjects(h, phObject, ulMaxCount, pulObjectCount);
}

HS_EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE h) { INITED(); return py_FindObjectsFinal(h); }

/* ---- cryptographic operations ----------------------------------------------------- */

#define OP_INIT(name, op) \
    HS_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) \
    { INITED(); NEED_PTR(pMechanism); return py_OpInit(op, h, pMechanism, hKey); }

/* One-shot and update calls that produce output (C_Encrypt, C_DecryptUpdate...). */
#define OP_DATA(name, op, step) \
    HS_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_BYTE_PTR pIn, CK_ULONG ulIn, CK_BYTE_PTR pOut, \
                         CK_ULONG_PTR pulOut) \
    { \
        INITED(); \
        hs_out o = {0}; \
        CK_RV rv = py_OpData(op, step, h, pIn, ulIn, hs_cap(pIn, ulIn, pOut, pulOut), &o); \
        return hs_deliver(rv, &o, pOut, pulOut, 1); \
    }

/* Final calls that produce output (C_EncryptFinal, C_SignFinal...). */
#define OP_FINAL(name, op) \
    HS_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_BYTE_PTR pOut, CK_ULONG_PTR pulOut) \
    { \
        INITED(); \
        hs_out o = {0}; \
        CK_RV rv = py_OpData(op, HS_STEP_FINAL, h, NULL, 0, hs_cap(NULL, 0, pOut, pulOut), &o); \
        return hs_deliver(rv, &o, pOut, pulOut, 1); \
    }

/* Update calls with no output (C_DigestUpdate, C_SignUpdate, C_VerifyUpdate). */
#define OP_FEED(name, op) \
    HS_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) \
    { \
        INITED(); \
        return py_OpFeed(op, h, pPart, ulPartLen); \
    }

OP_INIT(C_EncryptInit, HS_OP_ENCRYPT)
OP_DATA(C_Encrypt, HS_OP_ENCRYPT, HS_STEP_ONESHOT)
OP_DATA(C_EncryptUpdate, HS_OP_ENCRYPT, HS_STEP_UPDATE)
OP_FINAL(C_EncryptFinal, HS_OP_ENCRYPT)
OP_INIT(C_DecryptInit, HS_OP_DECRYPT)
OP_DATA(C_Decrypt, HS_OP_DECRYPT, HS_STEP_ONESHOT)
OP_DATA(C_DecryptUpdate, HS_OP_DECRYPT, HS_STEP_UPDATE)
OP_FINAL(C_DecryptFinal, HS_OP_DECRYPT)

HS_EXPORT CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism)
{
    INITED();
    NEED_PTR(pMechanism);
    return py_OpInit(HS_OP_DIGEST, h, pMechanism, 0);
}
OP_DATA(C_Digest, HS_OP_DIGEST, HS_STEP_ONESHOT)
OP_FEED(C_DigestUpdate, HS_OP_DIGEST)
HS_EXPORT CK_RV C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE hKey) { INITED(); return py_DigestKey(h, hKey); }
OP_FINAL(C_DigestFinal, HS_OP_DIGEST)

OP_INIT(C_SignInit, HS_OP_SIGN)
OP_DATA(C_Sign, HS_OP_SIGN, HS_STEP_ONESHOT)
OP_FEED(C_SignUpdate, HS_OP_SIGN)
OP_FINAL(C_SignFinal, HS_OP_SIGN)

OP_INIT(C_VerifyInit, HS_OP_VERIFY)
HS_EXPORT CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                         CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
    INITED();
    return py_Verify(h, pData, ulDataLen, pSignature, ulSignatureLen, HS_STEP_ONESHOT);
}
OP_FEED(C_VerifyUpdate, HS_OP_VERIFY)
HS_EXPORT CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen)
{
    INITED();
    return py_Verify(h, NULL, 0, pSignature, ulSignatureLen, HS_STEP_FINAL);
}

/* Recovery and dual-function operations are not supported (README "Not supported"). */
#define UNSUPPORTED_INIT(name) \
    HS_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) \
    { (void)pMechanism; (void)hKey; INITED(); return py_Unsupported(h); }
#define UNSUPPORTED_DATA(name) \
    HS_EXPORT CK_RV name(CK_SESSION_HANDLE h, CK_BYTE_PTR pIn, CK_ULONG ulIn, CK_BYTE_PTR pOut, \
                         CK_ULONG_PTR pulOut) \
    { (void)pIn; (void)ulIn; (void)pOut; (void)pulOut; INITED(); return py_Unsupported(h); }

UNSUPPORTED_INIT(C_SignRecoverInit)
UNSUPPORTED_DATA(C_SignRecover)
UNSUPPORTED_INIT(C_VerifyRecoverInit)
UNSUPPORTED_DATA(C_VerifyRecover)
UNSUPPORTED_DATA(C_DigestEncryptUpdate)
UNSUPPORTED_DATA(C_DecryptDigestUpdate)
UNSUPPORTED_DATA(C_SignEncryptUpdate)
UNSUPPORTED_DATA(C_DecryptVerifyUpdate)

/* ---- keys ------------------------------------------------------------------------ */

HS_EXPORT CK_RV C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
                              CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
    INITED();
    NEED_PTR(pMechanism);
    NEED_BUF(pTemplate, ulCount);
    NEED_PTR(phKey);
    RETURN_WITH_FLAT(f, pTemplate, ulCount, hs_changed(py_GenerateKey(h, pMechanism, f.ptr, f.len, phKey)));
}

HS_EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism,
                                  CK_ATTRIBUTE_PTR pPubTemplate, CK_ULONG ulPubCount,
                                  CK_ATTRIBUTE_PTR pPrivTemplate, CK_ULONG ulPrivCount,
                                  CK_OBJECT_HANDLE_PTR phPub, CK_OBJECT_HANDLE_PTR phPriv)
{
    INITED();
    NEED_PTR(pMechanism);
    NEED_BUF(pPubTemplate, ulPubCount);
    NEED_BUF(pPrivTemplate, ulPrivCount);
    NEED_PTR(phPub);
    NEED_PTR(phPriv);
    hs_flat pub, priv;
    CK_RV rv = hs_flatten(pPubTemplate, ulPubCount, &pub);
    if (rv != HS_CKR_OK)
        return rv;
    rv = hs_flatten(pPrivTemplate, ulPrivCount, &priv);
    if (rv == HS_CKR_OK) {
        rv = hs_changed(py_GenerateKeyPair(h, pMechanism, pub.ptr, pub.len, priv.ptr, priv.len, phPub, phPriv));
        hs_flat_free(&priv);
    }
    hs_flat_free(&pub);
    return rv;
}

HS_EXPORT CK_RV C_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey,
                          CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrapped, CK_ULONG_PTR pulWrappedLen)
{
    INITED();
    NEED_PTR(pMechanism);
    NEED_PTR(pulWrappedLen);
    hs_memo *m = hs_memo_get();
    hs_stamp now = hs_now();
    if (m != NULL && m->kind == HS_MEMO_WRAP && hs_same_stamp(&m->at, &now) && m->session == h &&
        m->a == hWrappingKey && m->b == hKey && hs_same_mechanism(m, pMechanism)) {
        hs_out kept = {m->values, m->len};
        return hs_deliver(HS_CKR_OK, &kept, pWrapped, pulWrappedLen, 1);
    }
    hs_out o = {0};
    int repeatable = 0;      /* Python: the mechanism's parameter bytes fix the answer */
    CK_RV rv = py_WrapKey(h, pMechanism, hWrappingKey, hKey, &o, &repeatable);
    if (rv == HS_CKR_OK && repeatable && m != NULL && now.valid && o.len <= HS_MEMO_MAX_VALUES &&
        hs_memo_keep_mechanism(m, pMechanism)) {
        m->kind = HS_MEMO_WRAP;
        m->session = h;
        m->a = hWrappingKey;
        m->b = hKey;
        hs_memo_keep_values(m, &now, &o);
    }
    return hs_deliver(rv, &o, pWrapped, pulWrappedLen, 1);
}

HS_EXPORT CK_RV C_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey,
                            CK_BYTE_PTR pWrapped, CK_ULONG ulWrappedLen, CK_ATTRIBUTE_PTR pTemplate,
                            CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
    INITED();
    NEED_PTR(pMechanism);
    NEED_BUF(pWrapped, ulWrappedLen);
    NEED_BUF(pTemplate, ulCount);
    NEED_PTR(phKey);
    RETURN_WITH_FLAT(f, pTemplate, ulCount,
              hs_changed(py_UnwrapKey(h, pMechanism, hUnwrappingKey, pWrapped, ulWrappedLen, f.ptr, f.len, phKey)));
}

HS_EXPORT CK_RV C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,
                            CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey)
{
    INITED();
    NEED_PTR(pMechanism);
    NEED_BUF(pTemplate, ulCount);
    NEED_PTR(phKey);
    RETURN_WITH_FLAT(f, pTemplate, ulCount, hs_changed(py_DeriveKey(h, pMechanism, hBaseKey, f.ptr, f.len, phKey)));
}

/* ---- random numbers and legacy functions ---------------------------------------- */

HS_EXPORT CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen)
{
    INITED();
    NEED_BUF(pSeed, ulSeedLen);
    return py_SeedRandom(h, pSeed, ulSeedLen);
}

HS_EXPORT CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR pRandom, CK_ULONG ulLen)
{
    INITED();
    NEED_BUF(pRandom, ulLen);
    return py_GenerateRandom(h, pRandom, ulLen);
}

/* Legacy parallel-function calls: always CKR_FUNCTION_NOT_PARALLEL (Base §5.16). */
HS_EXPORT CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE h) { INITED(); return py_Legacy(h); }
HS_EXPORT CK_RV C_CancelFunction(CK_SESSION_HANDLE h) { INITED(); return py_Legacy(h); }

HS_EXPORT CK_RV C_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR pSlot, CK_VOID_PTR pReserved)
{
    INITED();
    (void)flags; (void)pSlot; (void)pReserved;
    return py_Unsupported(0);
}

/* ---- the function list ------------------------------------------------------------ */

HS_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR *ppFunctionList);

static CK_FUNCTION_LIST g_functions = {
    {2, 40},
    C_Initialize, C_Finalize, C_GetInfo, C_GetFunctionList, C_GetSlotList, C_GetSlotInfo,
    C_GetTokenInfo, C_GetMechanismList, C_GetMechanismInfo, C_InitToken, C_InitPIN, C_SetPIN,
    C_OpenSession, C_CloseSession, C_CloseAllSessions, C_GetSessionInfo, C_GetOperationState,
    C_SetOperationState, C_Login, C_Logout, C_CreateObject, C_CopyObject, C_DestroyObject,
    C_GetObjectSize, C_GetAttributeValue, C_SetAttributeValue, C_FindObjectsInit, C_FindObjects,
    C_FindObjectsFinal, C_EncryptInit, C_Encrypt, C_EncryptUpdate, C_EncryptFinal, C_DecryptInit,
    C_Decrypt, C_DecryptUpdate, C_DecryptFinal, C_DigestInit, C_Digest, C_DigestUpdate, C_DigestKey,
    C_DigestFinal, C_SignInit, C_Sign, C_SignUpdate, C_SignFinal, C_SignRecoverInit, C_SignRecover,
    C_VerifyInit, C_Verify, C_VerifyUpdate, C_VerifyFinal, C_VerifyRecoverInit, C_VerifyRecover,
    C_DigestEncryptUpdate, C_DecryptDigestUpdate, C_SignEncryptUpdate, C_DecryptVerifyUpdate,
    C_GenerateKey, C_GenerateKeyPair, C_WrapKey, C_UnwrapKey, C_DeriveKey, C_SeedRandom,
    C_GenerateRandom, C_GetFunctionStatus, C_CancelFunction, C_WaitForSlotEvent,
};

/* Plain C: returning the table does not start Python. */
HS_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR *ppFunctionList)
{
    if (ppFunctionList == NULL)
        return HS_CKR_ARGUMENTS_BAD;
    *ppFunctionList = &g_functions;
    return HS_CKR_OK;
}
