/* cdriver: issue 7's C driver. It calls a PKCS#11 module directly, as a C client does, so
 * that the module's own cost shows without python-pkcs11 in between: output buffers are
 * sized in advance (no length query), the keys are made once, and only the calls are timed.
 *
 *   cdriver MODULE_PATH TOKEN_LABEL USER_PIN SECONDS [OPERATION]
 *
 * With OPERATION, only that one runs (for a profiler attached to the process).
 * Output, one line each:  "library DESCRIPTION VERSION"  then per operation
 *   "NAME OPS_PER_S CALLS SECONDS"   or   "NAME error WHAT"   (WHAT: "C_Fn 0xRV" or "check: ...")
 * Exit status 1 when the module cannot be loaded or logged into (reason on stderr).
 * bench/cdriver.py builds it, runs it and parses this.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "../csrc/pkcs11.h"

/* The header holds types only; these values are those of hspkcs11/consts.py. */
#define CKR_OK 0x0UL
#define CKR_SIGNATURE_INVALID 0xC0UL
#define CKR_USER_ALREADY_LOGGED_IN 0x100UL
#define CKF_RW_SESSION 0x2UL
#define CKF_SERIAL_SESSION 0x4UL
#define CKU_USER 1UL
#define CKS_RW_USER_FUNCTIONS 3UL
#define CKO_SECRET_KEY 4UL
#define CKK_GENERIC_SECRET 0x10UL
#define CKK_AES 0x1FUL
#define CKA_CLASS 0x0UL
#define CKA_TOKEN 0x1UL
#define CKA_PRIVATE 0x2UL
#define CKA_LABEL 0x3UL
#define CKA_VALUE 0x11UL
#define CKA_KEY_TYPE 0x100UL
#define CKA_SENSITIVE 0x103UL
#define CKA_ENCRYPT 0x104UL
#define CKA_DECRYPT 0x105UL
#define CKA_WRAP 0x106UL
#define CKA_UNWRAP 0x107UL
#define CKA_SIGN 0x108UL
#define CKA_VERIFY 0x10AUL
#define CKA_VALUE_LEN 0x161UL
#define CKA_EXTRACTABLE 0x162UL
#define CKA_EC_PARAMS 0x180UL
#define CKM_SHA256 0x250UL
#define CKM_SHA256_HMAC 0x251UL
#define CKM_EC_KEY_PAIR_GEN 0x1040UL
#define CKM_ECDSA 0x1041UL
#define CKM_AES_KEY_GEN 0x1080UL
#define CKM_AES_CBC_PAD 0x1085UL
#define CKM_AES_GCM 0x1087UL
#define CKM_AES_KEY_WRAP 0x2109UL

#define KIB 1024
#define BATCH 8                 /* calls between two clock reads */
#define CHECK_FAILED (~0UL)     /* not a CKR: a result was wrong; `failed` says how */
#define A(type, var) {type, (void *)&(var), sizeof(var)}
#define TRY(fn, ...) do { CK_RV rv_ = p11->fn(__VA_ARGS__); \
                          if (rv_ != CKR_OK) { failed = #fn; return rv_; } } while (0)
#define CHECK(cond) do { if (!(cond)) { failed = "check: " #cond; return CHECK_FAILED; } } while (0)

static CK_FUNCTION_LIST_PTR p11;
static CK_SLOT_ID slot;
static CK_SESSION_HANDLE s;
static const char *failed;      /* the function (or check) behind the last error */

static CK_BBOOL yes = 1, no = 0;
static CK_ULONG aes_len = 32, secret_class = CKO_SECRET_KEY, generic = CKK_GENERIC_SECRET, aes_type = CKK_AES;
static CK_BYTE p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};  /* prime256v1 */
/* SHA-256 of `data` below (bytes 0..255, four times): a known answer for the digest. */
static const CK_BYTE data_sha256[32] = {
    0x78, 0x5b, 0x07, 0x51, 0xfc, 0x2c, 0x53, 0xdc, 0x14, 0xa4, 0xce, 0x3d, 0x80, 0x0e, 0x69, 0xef,
    0x9c, 0xe1, 0x00, 0x9e, 0xb3, 0x27, 0xcc, 0xf4, 0x58, 0xaf, 0xe0, 0x9c, 0x24, 0x2c, 0x26, 0xc9};

static CK_BYTE data[KIB], out[2 * KIB], back[2 * KIB], hash[32], sig[128], label[32], blob[40];
static CK_ULONG out_len, sig_len, blob_len;
static CK_OBJECT_HANDLE aes, kek, hmac_key, ec_pub, ec_priv;
/* Wrap and attribute reads take these keys in turn, as bench/compare.py does: the module
 * answers a call that repeats the one before from its kept answer (csrc/shim.c). */
#define ROTATION 64
static CK_OBJECT_HANDLE targets[ROTATION];
static unsigned turn;
static CK_OBJECT_HANDLE made[BATCH];   /* session keys of one batch, destroyed after it */
static int n_made;

static CK_BYTE gcm_iv[12], cbc_iv[16];
static CK_GCM_PARAMS gcm = {gcm_iv, sizeof gcm_iv, 96, NULL, 0, 128};
static CK_MECHANISM m_gcm = {CKM_AES_GCM, &gcm, sizeof gcm}, m_cbc = {CKM_AES_CBC_PAD, cbc_iv, sizeof cbc_iv},
                    m_hmac = {CKM_SHA256_HMAC, NULL, 0}, m_sha256 = {CKM_SHA256, NULL, 0},
                    m_ecdsa = {CKM_ECDSA, NULL, 0}, m_wrap = {CKM_AES_KEY_WRAP, NULL, 0},
                    m_aes_gen = {CKM_AES_KEY_GEN, NULL, 0}, m_ec_gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --- keys (made once, on first use) --------------------------------------------------- */

static CK_RV token_aes(CK_OBJECT_HANDLE *key, const char *name, CK_ATTRIBUTE_TYPE use1, CK_ATTRIBUTE_TYPE use2)
{
    if (*key)
        return CKR_OK;
    CK_ATTRIBUTE t[] = {A(CKA_TOKEN, yes), A(CKA_PRIVATE, yes), A(CKA_SENSITIVE, yes), A(CKA_VALUE_LEN, aes_len),
                        A(use1, yes), A(use2, yes), {CKA_LABEL, (void *)name, strlen(name)}};
    TRY(C_GenerateKey, s, &m_aes_gen, t, sizeof t / sizeof *t, key);
    return CKR_OK;
}

static CK_RV ec_pair(void)
{
    if (ec_priv)
        return CKR_OK;
    CK_ATTRIBUTE pub[] = {A(CKA_TOKEN, yes), A(CKA_VERIFY, yes), A(CKA_EC_PARAMS, p256),
                          {CKA_LABEL, "bench-ec", 8}};
    CK_ATTRIBUTE priv[] = {A(CKA_TOKEN, yes), A(CKA_PRIVATE, yes), A(CKA_SENSITIVE, yes), A(CKA_SIGN, yes),
                           {CKA_LABEL, "bench-ec", 8}};
    TRY(C_GenerateKeyPair, s, &m_ec_gen, pub, 4, priv, 5, &ec_pub, &ec_priv);
    return CKR_OK;
}

/* --- the timed calls, each with its setup (which checks one result) --------------------- */

static CK_RV get_info(void)
{
    CK_INFO info;
    TRY(C_GetInfo, &info);
    return CKR_OK;
}

static CK_RV gcm_encrypt(void)
{
    for (int i = 11; i >= 0 && ++gcm_iv[i] == 0; i--)   /* a fresh IV per call: a counter */
        ;
    out_len = sizeof out;
    TRY(C_EncryptInit, s, &m_gcm, aes);
    TRY(C_Encrypt, s, data, KIB, out, &out_len);
    return CKR_OK;
}

static CK_RV cbc_encrypt(void)
{
    out_len = sizeof out;
    TRY(C_EncryptInit, s, &m_cbc, aes);
    TRY(C_Encrypt, s, data, KIB, out, &out_len);
    return CKR_OK;
}

/* Encrypt once with `call`, decrypt with `m`: the plaintext comes back, `expect` bytes out. */
static CK_RV round_trip(CK_RV (*call)(void), CK_MECHANISM *m, CK_ULONG expect)
{
    CK_RV rv = token_aes(&aes, "bench-aes", CKA_ENCRYPT, CKA_DECRYPT);
    if (rv != CKR_OK || (rv = call()) != CKR_OK)
        return rv;
    CHECK(out_len == expect);
    CK_ULONG back_len = sizeof back;
    TRY(C_DecryptInit, s, m, aes);
    TRY(C_Decrypt, s, out, out_len, back, &back_len);
    CHECK(back_len == KIB && memcmp(back, data, KIB) == 0);
    return CKR_OK;
}

static CK_RV setup_gcm(void) { return round_trip(gcm_encrypt, &m_gcm, KIB + 16); }
static CK_RV setup_cbc(void) { return round_trip(cbc_encrypt, &m_cbc, KIB + 16); }

static CK_RV hmac_sign(void)
{
    sig_len = sizeof sig;
    TRY(C_SignInit, s, &m_hmac, hmac_key);
    TRY(C_Sign, s, data, KIB, sig, &sig_len);
    return CKR_OK;
}

static CK_RV setup_hmac(void)
{
    CK_BYTE value[32];
    CHECK(getrandom(value, sizeof value, 0) == sizeof value);
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, secret_class), A(CKA_KEY_TYPE, generic), A(CKA_TOKEN, yes),
                        A(CKA_PRIVATE, yes), A(CKA_SENSITIVE, yes), A(CKA_VALUE, value), A(CKA_SIGN, yes),
                        A(CKA_VERIFY, yes), {CKA_LABEL, "bench-hmac", 10}};
    TRY(C_CreateObject, s, t, sizeof t / sizeof *t, &hmac_key);
    CK_RV rv = hmac_sign();
    if (rv != CKR_OK)
        return rv;
    CHECK(sig_len == 32);
    TRY(C_VerifyInit, s, &m_hmac, hmac_key);
    TRY(C_Verify, s, data, KIB, sig, sig_len);
    return CKR_OK;
}

static CK_RV digest(void)
{
    out_len = sizeof out;
    TRY(C_DigestInit, s, &m_sha256);
    TRY(C_Digest, s, data, KIB, out, &out_len);
    return CKR_OK;
}

static CK_RV setup_digest(void)
{
    CK_RV rv = digest();
    if (rv != CKR_OK)
        return rv;
    CHECK(out_len == 32 && memcmp(out, data_sha256, 32) == 0);
    return CKR_OK;
}

static CK_RV ecdsa_sign(void)
{
    sig_len = sizeof sig;
    TRY(C_SignInit, s, &m_ecdsa, ec_priv);
    TRY(C_Sign, s, hash, sizeof hash, sig, &sig_len);
    return CKR_OK;
}

static CK_RV ecdsa_verify(void)
{
    TRY(C_VerifyInit, s, &m_ecdsa, ec_pub);
    TRY(C_Verify, s, hash, sizeof hash, sig, sig_len);
    return CKR_OK;
}

/* Both ECDSA operations: the signature verifies, and fails once the hash changes. */
static CK_RV setup_ecdsa(void)
{
    CK_RV rv = ec_pair();
    if (rv != CKR_OK || (rv = ecdsa_sign()) != CKR_OK)
        return rv;
    CHECK(sig_len == 64);
    if ((rv = ecdsa_verify()) != CKR_OK)
        return rv;
    hash[0] ^= 1;
    TRY(C_VerifyInit, s, &m_ecdsa, ec_pub);
    rv = p11->C_Verify(s, hash, sizeof hash, sig, sig_len);
    hash[0] ^= 1;
    CHECK(rv == CKR_SIGNATURE_INVALID);
    return CKR_OK;
}

static CK_RV make_targets(void)
{
    CK_ATTRIBUTE t[] = {A(CKA_TOKEN, no), A(CKA_SENSITIVE, yes), A(CKA_EXTRACTABLE, yes),
                        A(CKA_VALUE_LEN, aes_len), {CKA_LABEL, "target", 6}};
    for (int i = 0; i < ROTATION; i++)
        if (!targets[i])
            TRY(C_GenerateKey, s, &m_aes_gen, t, sizeof t / sizeof *t, &targets[i]);
    return CKR_OK;
}

static CK_RV wrap(void)
{
    out_len = sizeof out;
    TRY(C_WrapKey, s, &m_wrap, kek, targets[turn++ % ROTATION], out, &out_len);
    return CKR_OK;
}

static CK_RV setup_wrap(void)
{
    CK_RV rv = token_aes(&kek, "bench-kek", CKA_WRAP, CKA_UNWRAP);
    if (rv != CKR_OK || (rv = make_targets()) != CKR_OK)
        return rv;
    if ((rv = wrap()) != CKR_OK)
        return rv;
    CHECK(out_len == 40);
    return CKR_OK;
}

/* session_aes_keygen times C_GenerateKey alone: the keys of a batch are destroyed after it,
 * outside the clock, as bench/compare.py does, so that both figures measure the same thing. */
static CK_RV keygen(void)
{
    CK_ATTRIBUTE t[] = {A(CKA_TOKEN, no), A(CKA_VALUE_LEN, aes_len), {CKA_LABEL, "gen", 3}};
    TRY(C_GenerateKey, s, &m_aes_gen, t, 3, &made[n_made]);
    n_made++;
    return CKR_OK;
}

static CK_RV destroy_made(void)
{
    CK_RV rv = CKR_OK;
    for (; n_made > 0; n_made--)
        if (rv == CKR_OK && (rv = p11->C_DestroyObject(s, made[n_made - 1])) != CKR_OK)
            failed = "C_DestroyObject";
    return rv;
}

static CK_RV setup_keygen(void)
{
    CK_RV rv = keygen();
    if (rv != CKR_OK)
        return rv;
    CK_ULONG len = 0;
    CK_BBOOL token = 1;
    CK_ATTRIBUTE t[] = {A(CKA_VALUE_LEN, len), A(CKA_TOKEN, token)};
    TRY(C_GetAttributeValue, s, made[0], t, 2);
    CHECK(len == 32 && token == 0);
    return destroy_made();
}

/* aes_key_unwrap times C_UnwrapKey alone, to a session AES key with a template of the
 * kind a client sends; the keys are destroyed after each batch, outside the clock. */
static CK_RV unwrap(void)
{
    CK_ATTRIBUTE t[] = {A(CKA_CLASS, secret_class), A(CKA_KEY_TYPE, aes_type), A(CKA_TOKEN, no),
                        A(CKA_SENSITIVE, yes), A(CKA_EXTRACTABLE, yes), A(CKA_ENCRYPT, yes),
                        A(CKA_DECRYPT, yes), {CKA_LABEL, "unwrapped", 9}};
    TRY(C_UnwrapKey, s, &m_wrap, kek, blob, blob_len, t, sizeof t / sizeof *t, &made[n_made]);
    n_made++;
    return CKR_OK;
}

static CK_RV setup_unwrap(void)
{
    CK_RV rv = setup_wrap();
    if (rv != CKR_OK)
        return rv;
    memcpy(blob, out, sizeof blob);
    blob_len = sizeof blob;
    if ((rv = unwrap()) != CKR_OK)
        return rv;
    /* AES key wrap is deterministic: wrapping the unwrapped key again gives the same blob. */
    out_len = sizeof out;
    TRY(C_WrapKey, s, &m_wrap, kek, made[0], out, &out_len);
    CHECK(out_len == blob_len && memcmp(out, blob, blob_len) == 0);
    return destroy_made();
}

static CK_RV get_label(void)
{
    CK_ATTRIBUTE t = A(CKA_LABEL, label);
    TRY(C_GetAttributeValue, s, targets[turn++ % ROTATION], &t, 1);
    out_len = t.ulValueLen;
    return CKR_OK;
}

static CK_RV setup_label(void)
{
    CK_RV rv = make_targets();
    if (rv != CKR_OK || (rv = get_label()) != CKR_OK)
        return rv;
    CHECK(out_len == 6 && memcmp(label, "target", 6) == 0);
    return CKR_OK;
}

static CK_RV open_close(void)
{
    CK_SESSION_HANDLE h;
    TRY(C_OpenSession, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    TRY(C_CloseSession, h);
    return CKR_OK;
}

/* A new session shares the login of the first (it is what the application relies on). */
static CK_RV setup_open_close(void)
{
    CK_SESSION_HANDLE h;
    CK_SESSION_INFO info;
    TRY(C_OpenSession, slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h);
    CK_RV rv = p11->C_GetSessionInfo(h, &info);
    p11->C_CloseSession(h);
    if (rv != CKR_OK) {
        failed = "C_GetSessionInfo";
        return rv;
    }
    CHECK(info.state == CKS_RW_USER_FUNCTIONS);
    return CKR_OK;
}

struct op {
    const char *name;
    CK_RV (*setup)(void);   /* makes what the call needs and checks one result; may be NULL */
    CK_RV (*call)(void);    /* the timed call */
    CK_RV (*after)(void);   /* after each batch, outside the clock; may be NULL */
};

static const struct op ops[] = {
    {"get_info", NULL, get_info, NULL},
    {"aes_gcm_encrypt_1k", setup_gcm, gcm_encrypt, NULL},
    {"aes_cbc_pad_encrypt_1k", setup_cbc, cbc_encrypt, NULL},
    {"hmac_sha256_sign_1k", setup_hmac, hmac_sign, NULL},
    {"sha256_digest_1k", setup_digest, digest, NULL},
    {"ecdsa_p256_sign", setup_ecdsa, ecdsa_sign, NULL},
    {"ecdsa_p256_verify", setup_ecdsa, ecdsa_verify, NULL},
    {"aes_key_wrap", setup_wrap, wrap, NULL},
    {"aes_key_unwrap", setup_unwrap, unwrap, destroy_made},
    {"session_aes_keygen", setup_keygen, keygen, destroy_made},
    {"get_attribute_label", setup_label, get_label, NULL},
    {"open_close_session", setup_open_close, open_close, NULL},
};

/* --- timing ----------------------------------------------------------------------------- */

static CK_RV batch(const struct op *op, double *spent)
{
    CK_RV rv = CKR_OK;
    double t = now();
    for (int i = 0; i < BATCH && rv == CKR_OK; i++)
        rv = op->call();
    *spent += now() - t;
    if (op->after) {
        CK_RV after = op->after();
        rv = rv != CKR_OK ? rv : after;
    }
    return rv;
}

/* Warm up for a tenth of the time (one batch at least), then time whole batches until
 * `seconds` of calls have been spent. */
static CK_RV measure(const struct op *op, double seconds, unsigned long *calls, double *spent)
{
    double warm = 0;
    CK_RV rv;
    do
        if ((rv = batch(op, &warm)) != CKR_OK)
            return rv;
    while (warm < seconds / 10);
    *calls = 0;
    *spent = 0;
    do {
        if ((rv = batch(op, spent)) != CKR_OK)
            return rv;
        *calls += BATCH;
    } while (*spent < seconds);
    return CKR_OK;
}

static void report(const struct op *op, CK_RV rv, unsigned long calls, double spent)
{
    if (rv == CHECK_FAILED)
        printf("%s error %s\n", op->name, failed);
    else if (rv != CKR_OK)
        printf("%s error %s 0x%08lx\n", op->name, failed ? failed : "?", rv);
    else
        printf("%s %.1f %lu %.4f\n", op->name, (double)calls / spent, calls, spent);
    fflush(stdout);
}

/* --- start: load, find the token, log in ------------------------------------------------- */

static int die(const char *what, CK_RV rv)
{
    fprintf(stderr, "cdriver: %s: 0x%08lx\n", what, rv);
    return 1;
}

/* The slot whose token label is `want` (labels are padded with spaces to 32 bytes). */
static CK_RV find_slot(const char *want, CK_SLOT_ID *found)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64;
    CK_RV rv = p11->C_GetSlotList(yes, slots, &n);   /* slots with a token */
    if (rv != CKR_OK)
        return rv;
    char padded[32];
    memset(padded, ' ', 32);
    memcpy(padded, want, strnlen(want, 32));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO info;
        if (p11->C_GetTokenInfo(slots[i], &info) == CKR_OK && memcmp(info.label, padded, 32) == 0) {
            *found = slots[i];
            return CKR_OK;
        }
    }
    return CHECK_FAILED;
}

int main(int argc, char **argv)
{
    if (argc != 5 && argc != 6) {
        fprintf(stderr, "usage: %s MODULE_PATH TOKEN_LABEL USER_PIN SECONDS [OPERATION]\n", argv[0]);
        return 2;
    }
    const char *pin = argv[3];
    double seconds = atof(argv[4]);
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        fprintf(stderr, "cdriver: %s\n", dlerror());
        return 1;
    }
    CK_RV (*get_list)(CK_FUNCTION_LIST_PTR *) = (CK_RV (*)(CK_FUNCTION_LIST_PTR *))dlsym(lib, "C_GetFunctionList");
    CK_RV rv;
    if (get_list == NULL || (rv = get_list(&p11)) != CKR_OK)
        return die("C_GetFunctionList", get_list ? rv : CHECK_FAILED);
    if ((rv = p11->C_Initialize(NULL)) != CKR_OK)
        return die("C_Initialize", rv);
    CK_INFO info;
    if ((rv = p11->C_GetInfo(&info)) != CKR_OK)
        return die("C_GetInfo", rv);
    printf("library %.32s %d.%d\n", info.libraryDescription, info.libraryVersion.major, info.libraryVersion.minor);
    if ((rv = find_slot(argv[2], &slot)) == CHECK_FAILED) {
        fprintf(stderr, "cdriver: no token labelled '%s'\n", argv[2]);
        return 1;
    }
    if (rv != CKR_OK)
        return die("C_GetSlotList", rv);
    if ((rv = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s)) != CKR_OK)
        return die("C_OpenSession", rv);
    rv = p11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        return die("C_Login", rv);

    for (int i = 0; i < KIB; i++)
        data[i] = (CK_BYTE)i;
    memcpy(hash, data_sha256, sizeof hash);   /* CKM_ECDSA signs a hash */
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        if (argc == 6 && strcmp(argv[5], ops[i].name) != 0)
            continue;
        unsigned long calls = 0;
        double spent = 0;
        failed = NULL;
        rv = ops[i].setup ? ops[i].setup() : CKR_OK;
        if (rv == CKR_OK)
            rv = measure(&ops[i], seconds, &calls, &spent);
        report(&ops[i], rv, calls, spent);
    }
    p11->C_Logout(s);
    p11->C_CloseSession(s);
    p11->C_Finalize(NULL);
    return 0;
}
