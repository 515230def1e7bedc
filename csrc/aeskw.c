/*
 * AES key wrap, RFC 3394 (KW) and RFC 5649 (KWP), over libcrypto's AES-ECB.
 *
 * AES itself comes from libcrypto (an EVP ECB context, padding off); this file only
 * drives the RFC steps. Why not EVP's own wrap modes: they must be initialised per key
 * and cost ~10x more than one reused ECB context per KEK (DESIGN.md, "The AES key-wrap
 * fast path"). The batch re-wrap advances HS_KW_LANES blobs of the same length in
 * lock step, so that each ECB call encrypts HS_KW_LANES independent blocks and AES-NI
 * pipelines them instead of waiting on one chained block at a time.
 */
#include "aeskw.h"

#include <stdlib.h>
#include <string.h>

#include <pthread.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#ifndef HS_KW_LANES
#define HS_KW_LANES 32
#endif

/* Far above any key; keeps 6n (the step counter t) and the RFC 5649 MLI in range. */
#define HS_KW_MAX_DATA ((size_t)0xFFFFFFF8u)

static const uint8_t DEFAULT_IV[8] = {0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}; /* RFC 3394 §2.2.3.1 */
static const uint8_t KWP_AIV[4] = {0xA6, 0x59, 0x59, 0xA6};                          /* RFC 5649 §3 */

/*
 * The AES-ECB ciphers, fetched once: with OpenSSL 3 an EVP_aes_*_ecb() handle makes
 * every EVP_CipherInit_ex fetch the provider's implementation again, which costs more
 * than a whole 32-byte key wrap.
 */
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_CIPHER *fetched[3];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_ciphers(void)
{
    fetched[0] = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    fetched[1] = EVP_CIPHER_fetch(NULL, "AES-192-ECB", NULL);
    fetched[2] = EVP_CIPHER_fetch(NULL, "AES-256-ECB", NULL);
}
#endif

static const EVP_CIPHER *ecb_for(size_t kek_len)
{
    size_t k;

    switch (kek_len) {
    case 16: k = 0; break;
    case 24: k = 1; break;
    case 32: k = 2; break;
    default: return NULL;
    }
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    pthread_once(&fetch_once, fetch_ciphers);
    if (fetched[k] != NULL)
        return fetched[k];
#endif
    return k == 0 ? EVP_aes_128_ecb() : k == 1 ? EVP_aes_192_ecb() : EVP_aes_256_ecb();
}

/* One ECB context for a KEK, padding off. enc: 1 = encrypt (wrap), 0 = decrypt (unwrap). */
static EVP_CIPHER_CTX *ecb_ctx(const uint8_t *kek, size_t kek_len, int enc, int *err)
{
    const EVP_CIPHER *cipher = ecb_for(kek_len);
    EVP_CIPHER_CTX *ctx;

    if (cipher == NULL) {
        *err = HS_KW_ERR_KEY;
        return NULL;
    }
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL) {
        *err = HS_KW_ERR_MEMORY;
        return NULL;
    }
    if (EVP_CipherInit_ex(ctx, cipher, NULL, kek, NULL, enc) != 1
        || EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        *err = HS_KW_ERR_CRYPTO;
        return NULL;
    }
    return ctx;
}

/* len bytes (a multiple of 16) through the context, in place. */
static int ecb(EVP_CIPHER_CTX *ctx, uint8_t *buf, size_t len)
{
    int outl = 0;

    if (EVP_CipherUpdate(ctx, buf, &outl, buf, (int)len) != 1 || (size_t)outl != len)
        return HS_KW_ERR_CRYPTO;
    return HS_KW_OK;
}

/* A ^= t, t taken as a 64-bit big-endian integer (RFC 3394 §2.2.1 step 2). */
static inline void xor_t(uint8_t *a, uint64_t t)
{
    for (int k = 7; t != 0; k--, t >>= 8)
        a[k] ^= (uint8_t)t;
}

static inline uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/*
 * RFC 3394 §2.2.1 wrap, index form, over L blobs of n semiblocks each, in lock step.
 * a[l]: 8 bytes, in: the IV, out: C[0]. r[l]: n*8 bytes, in: P[1..n], out: C[1..n].
 * blk: scratch of L*16 bytes; block l holds A_l | R_l[i] for the current step, so that
 * one ECB call processes the step of every lane.
 * n == 1 is RFC 5649 §4.1's single-block case: C[0] | C[1] = AES(K, A | P[1]).
 */
static int lanes_wrap(EVP_CIPHER_CTX *ctx, size_t L, size_t n,
                      uint8_t *const *a, uint8_t *const *r, uint8_t *blk)
{
    size_t l, i, j;
    uint64_t t = 1;
    int rc;

    for (l = 0; l < L; l++) {
        memcpy(blk + 16 * l, a[l], 8);
        if (n == 1)
            memcpy(blk + 16 * l + 8, r[l], 8);
    }
    if (n == 1) {
        rc = ecb(ctx, blk, 16 * L);
        for (l = 0; l < L; l++) {
            memcpy(a[l], blk + 16 * l, 8);
            memcpy(r[l], blk + 16 * l + 8, 8);
        }
        return rc;
    }
    for (j = 0; j < 6; j++) {
        for (i = 0; i < n; i++, t++) {
            for (l = 0; l < L; l++)
                memcpy(blk + 16 * l + 8, r[l] + 8 * i, 8);
            if ((rc = ecb(ctx, blk, 16 * L)) != HS_KW_OK)
                return rc;
            for (l = 0; l < L; l++) {
                memcpy(r[l] + 8 * i, blk + 16 * l + 8, 8);
                xor_t(blk + 16 * l, t);
            }
        }
    }
    for (l = 0; l < L; l++)
        memcpy(a[l], blk + 16 * l, 8);
    return HS_KW_OK;
}

/* RFC 3394 §2.2.2 unwrap, index form; the inverse of lanes_wrap (same layout). */
static int lanes_unwrap(EVP_CIPHER_CTX *ctx, size_t L, size_t n,
                        uint8_t *const *a, uint8_t *const *r, uint8_t *blk)
{
    size_t l, i, j;
    uint64_t t = 6 * (uint64_t)n;
    int rc;

    for (l = 0; l < L; l++) {
        memcpy(blk + 16 * l, a[l], 8);
        if (n == 1)
            memcpy(blk + 16 * l + 8, r[l], 8);
    }
    if (n == 1) {
        rc = ecb(ctx, blk, 16 * L);
        for (l = 0; l < L; l++) {
            memcpy(a[l], blk + 16 * l, 8);
            memcpy(r[l], blk + 16 * l + 8, 8);
        }
        return rc;
    }
    for (j = 6; j-- > 0;) {
        for (i = n; i-- > 0; t--) {
            for (l = 0; l < L; l++) {
                xor_t(blk + 16 * l, t);
                memcpy(blk + 16 * l + 8, r[l] + 8 * i, 8);
            }
            if ((rc = ecb(ctx, blk, 16 * L)) != HS_KW_OK)
                return rc;
            for (l = 0; l < L; l++)
                memcpy(r[l] + 8 * i, blk + 16 * l + 8, 8);
        }
    }
    for (l = 0; l < L; l++)
        memcpy(a[l], blk + 16 * l, 8);
    return HS_KW_OK;
}

/*
 * RFC 5649 §3 integrity check of an unwrapped A and R (n semiblocks): the AIV's
 * constant, 8(n-1) < MLI <= 8n, and zero padding after the MLI. Without early exit,
 * so that a failure shows no timing of which check failed.
 */
static int kwp_check(const uint8_t *a, const uint8_t *r, size_t n, size_t *mli_out)
{
    size_t mli = load_be32(a + 4), max = 8 * n, k;
    unsigned bad = CRYPTO_memcmp(a, KWP_AIV, 4) != 0;
    uint8_t pad = 0;

    bad |= !(mli > max - 8 && mli <= max);
    for (k = max - 8; k < max; k++)
        pad |= r[k] & (uint8_t)(0 - (uint8_t)(k >= mli));
    bad |= pad != 0;
    *mli_out = mli;
    return bad ? HS_KW_ERR_INTEGRITY : HS_KW_OK;
}

/* ---- single blob ------------------------------------------------------------------- */

int hs_kw_wrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
               uint8_t *out, const uint8_t *iv)
{
    uint8_t a[8], blk[16], *ap = a, *rp = out + 8;
    EVP_CIPHER_CTX *ctx;
    int rc;

    if (ecb_for(kek_len) == NULL)
        return HS_KW_ERR_KEY;
    if (in_len < 16 || in_len % 8 != 0 || in_len > HS_KW_MAX_DATA)  /* n >= 2 (§2) */
        return HS_KW_ERR_LENGTH;
    if ((ctx = ecb_ctx(kek, kek_len, 1, &rc)) == NULL)
        return rc;
    memcpy(a, iv != NULL ? iv : DEFAULT_IV, 8);
    memmove(out + 8, in, in_len);
    rc = lanes_wrap(ctx, 1, in_len / 8, &ap, &rp, blk);
    memcpy(out, a, 8);
    OPENSSL_cleanse(blk, sizeof blk);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int hs_kw_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                 uint8_t *out, const uint8_t *iv)
{
    uint8_t a[8], blk[16], *ap = a, *rp = out;
    EVP_CIPHER_CTX *ctx;
    int rc;

    if (ecb_for(kek_len) == NULL)
        return HS_KW_ERR_KEY;
    if (in_len < 24 || in_len % 8 != 0 || in_len - 8 > HS_KW_MAX_DATA)
        return HS_KW_ERR_LENGTH;
    if ((ctx = ecb_ctx(kek, kek_len, 0, &rc)) == NULL)
        return rc;
    memcpy(a, in, 8);                      /* before the move: in may be out */
    memmove(out, in + 8, in_len - 8);
    rc = lanes_unwrap(ctx, 1, in_len / 8 - 1, &ap, &rp, blk);
    if (rc == HS_KW_OK && CRYPTO_memcmp(a, iv != NULL ? iv : DEFAULT_IV, 8) != 0)
        rc = HS_KW_ERR_INTEGRITY;          /* §2.2.3 */
    if (rc != HS_KW_OK)
        OPENSSL_cleanse(out, in_len - 8);
    OPENSSL_cleanse(blk, sizeof blk);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int hs_kwp_wrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                uint8_t *out, size_t *out_len)
{
    uint8_t a[8], blk[16], *ap = a, *rp = out + 8;
    size_t padded = (in_len + 7) & ~(size_t)7;
    EVP_CIPHER_CTX *ctx;
    int rc;

    if (ecb_for(kek_len) == NULL)
        return HS_KW_ERR_KEY;
    if (in_len == 0 || in_len > HS_KW_MAX_DATA)
        return HS_KW_ERR_LENGTH;
    if ((ctx = ecb_ctx(kek, kek_len, 1, &rc)) == NULL)
        return rc;
    memcpy(a, KWP_AIV, 4);                 /* AIV = A65959A6 | MLI (§3) */
    store_be32(a + 4, (uint32_t)in_len);
    memmove(out + 8, in, in_len);
    memset(out + 8 + in_len, 0, padded - in_len);
    rc = lanes_wrap(ctx, 1, padded / 8, &ap, &rp, blk);  /* n == 1: §4.1 single block */
    memcpy(out, a, 8);
    *out_len = rc == HS_KW_OK ? padded + 8 : 0;
    OPENSSL_cleanse(blk, sizeof blk);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int hs_kwp_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                  uint8_t *out, size_t *out_len)
{
    uint8_t a[8], blk[16], *ap = a, *rp = out;
    size_t mli = 0;
    EVP_CIPHER_CTX *ctx;
    int rc;

    *out_len = 0;
    if (ecb_for(kek_len) == NULL)
        return HS_KW_ERR_KEY;
    if (in_len < 16 || in_len % 8 != 0 || in_len - 8 > HS_KW_MAX_DATA)
        return HS_KW_ERR_LENGTH;
    if ((ctx = ecb_ctx(kek, kek_len, 0, &rc)) == NULL)
        return rc;
    memcpy(a, in, 8);
    memmove(out, in + 8, in_len - 8);
    rc = lanes_unwrap(ctx, 1, in_len / 8 - 1, &ap, &rp, blk);
    if (rc == HS_KW_OK)
        rc = kwp_check(a, out, in_len / 8 - 1, &mli);
    if (rc == HS_KW_OK)
        *out_len = mli;
    else
        OPENSSL_cleanse(out, in_len - 8);
    OPENSSL_cleanse(blk, sizeof blk);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* ---- batch re-wrap ----------------------------------------------------------------- */

struct blob_ref {
    size_t len;
    size_t index;
};

static int by_len(const void *x, const void *y)
{
    const struct blob_ref *p = x, *q = y;

    if (p->len != q->len)
        return p->len < q->len ? -1 : 1;
    return p->index < q->index ? -1 : p->index > q->index;
}

size_t hs_kw_lanes(void)
{
    return HS_KW_LANES;
}

/* Re-wrap L blobs of n semiblocks: unwrap under dctx, check, wrap under ectx. */
static int rewrap_lanes(EVP_CIPHER_CTX *dctx, EVP_CIPHER_CTX *ectx, size_t L, size_t n,
                        const struct blob_ref *refs, const uint8_t *in, const size_t *in_off,
                        uint8_t *out, const size_t *out_off, size_t *out_len, int *status)
{
    uint8_t abuf[8 * HS_KW_LANES], blk[16 * HS_KW_LANES];
    uint8_t *a[HS_KW_LANES] = {NULL}, *r[HS_KW_LANES] = {NULL};
    int ok[HS_KW_LANES];
    size_t l, mli;
    int rc;

    for (l = 0; l < L; l++) {
        const uint8_t *src = in + in_off[refs[l].index];
        uint8_t *dst = out + out_off[refs[l].index];

        a[l] = abuf + 8 * l;
        r[l] = dst + 8;
        memcpy(a[l], src, 8);
        memmove(r[l], src + 8, 8 * n);     /* in place (out == in) is allowed */
    }
    rc = lanes_unwrap(dctx, L, n, a, r, blk);
    for (l = 0; l < L && rc == HS_KW_OK; l++)
        ok[l] = kwp_check(a[l], r[l], n, &mli);
    /* A (= AIV | MLI) and the padded R are exactly what wrapping under the new KEK
     * starts from: no re-padding needed. Failed lanes go along and are wiped after. */
    if (rc == HS_KW_OK)
        rc = lanes_wrap(ectx, L, n, a, r, blk);
    for (l = 0; l < L; l++) {
        size_t i = refs[l].index;
        uint8_t *dst = out + out_off[i];

        if (rc == HS_KW_OK && ok[l] == HS_KW_OK) {
            memcpy(dst, a[l], 8);
            out_len[i] = 8 * (n + 1);
            status[i] = HS_KW_OK;
        } else {
            OPENSSL_cleanse(dst, 8 * (n + 1));
            out_len[i] = 0;
            status[i] = rc != HS_KW_OK ? rc : ok[l];
        }
    }
    OPENSSL_cleanse(blk, sizeof blk);
    OPENSSL_cleanse(abuf, sizeof abuf);
    return rc;
}

int hs_kwp_rewrap_batch(const uint8_t *old_kek, size_t old_len,
                        const uint8_t *new_kek, size_t new_len,
                        size_t n, const uint8_t *in, const size_t *in_off, const size_t *in_len,
                        uint8_t *out, const size_t *out_off, size_t *out_len, int *status)
{
    EVP_CIPHER_CTX *dctx = NULL, *ectx = NULL;
    struct blob_ref *refs = NULL;
    size_t i, m = 0, start, end;
    int rc = HS_KW_OK, sorted = 1;

    if (ecb_for(old_len) == NULL || ecb_for(new_len) == NULL)
        return HS_KW_ERR_KEY;
    if (n == 0)
        return HS_KW_OK;
    if ((refs = malloc(n * sizeof *refs)) == NULL)
        return HS_KW_ERR_MEMORY;
    if ((dctx = ecb_ctx(old_kek, old_len, 0, &rc)) == NULL
        || (ectx = ecb_ctx(new_kek, new_len, 1, &rc)) == NULL)
        goto done;

    /* Valid blobs, grouped by length so that lanes advance in lock step. */
    for (i = 0; i < n; i++) {
        out_len[i] = 0;
        if (in_len[i] < 16 || in_len[i] % 8 != 0 || in_len[i] - 8 > HS_KW_MAX_DATA) {
            status[i] = HS_KW_ERR_LENGTH;
            continue;
        }
        status[i] = HS_KW_OK;
        if (m > 0 && in_len[i] < refs[m - 1].len)
            sorted = 0;
        refs[m].len = in_len[i];
        refs[m].index = i;
        m++;
    }
    if (!sorted)                           /* the common case, all one length, skips this */
        qsort(refs, m, sizeof *refs, by_len);

    for (start = 0; start < m; start = end) {
        size_t len = refs[start].len;

        for (end = start; end < m && end - start < HS_KW_LANES && refs[end].len == len; end++)
            ;
        rc = rewrap_lanes(dctx, ectx, end - start, len / 8 - 1, refs + start, in, in_off,
                          out, out_off, out_len, status);
        if (rc != HS_KW_OK)
            goto done;
    }
done:
    EVP_CIPHER_CTX_free(dctx);
    EVP_CIPHER_CTX_free(ectx);
    free(refs);
    return rc;
}
