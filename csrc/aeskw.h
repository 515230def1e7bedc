/*
 * AES key wrap (RFC 3394, "KW") and AES key wrap with padding (RFC 5649, "KWP")
 * driven in C over the AES-ECB block cipher of the system libcrypto.
 *
 * Every function returns HS_KW_OK (0) or a negative HS_KW_ERR_* code. The KEK is
 * 16, 24 or 32 bytes (AES-128/192/256). Output buffers must not overlap the input
 * except exactly (in == out is fine for the single-blob functions).
 *
 * The block between the cdef markers is read by csrc/build_aeskw.py as the cffi cdef:
 * keep it free of preprocessor lines.
 */
#ifndef HS_AESKW_H
#define HS_AESKW_H

#include <stddef.h>
#include <stdint.h>

#define HS_KW_OK             0
#define HS_KW_ERR_LENGTH    (-1)  /* input length not allowed by the RFC */
#define HS_KW_ERR_INTEGRITY (-2)  /* unwrap: integrity check (IV/AIV, MLI, padding) failed */
#define HS_KW_ERR_KEY       (-3)  /* KEK is not 16, 24 or 32 bytes */
#define HS_KW_ERR_CRYPTO    (-4)  /* libcrypto failed (should not happen) */
#define HS_KW_ERR_MEMORY    (-5)  /* allocation failed */

/* cdef-begin */
/* RFC 3394 wrap. in_len: multiple of 8, >= 16. out: in_len + 8 bytes.
 * iv: 8 bytes, or NULL for the default A6A6A6A6A6A6A6A6 (RFC 3394 §2.2.3.1). */
int hs_kw_wrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
               uint8_t *out, const uint8_t *iv);
/* RFC 3394 unwrap. in_len: multiple of 8, >= 24. out: in_len - 8 bytes (wiped on failure). */
int hs_kw_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                 uint8_t *out, const uint8_t *iv);
/* RFC 5649 wrap. 1 <= in_len < 2^32. out capacity: round_up8(in_len) + 8 (that length
 * is written to *out_len). */
int hs_kwp_wrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                uint8_t *out, size_t *out_len);
/* RFC 5649 unwrap. in_len: multiple of 8, >= 16. out capacity: in_len - 8; the
 * plaintext length (the MLI) is written to *out_len. */
int hs_kwp_unwrap(const uint8_t *kek, size_t kek_len, const uint8_t *in, size_t in_len,
                  uint8_t *out, size_t *out_len);
/* Re-wrap n RFC 5649 blobs from old_kek to new_kek (master-key rotation).
 * Blob i is in[in_off[i] .. in_off[i] + in_len[i]); its re-wrap (same length) goes to
 * out[out_off[i] ..], which must have room for in_len[i] bytes. status[i] is HS_KW_OK
 * or HS_KW_ERR_LENGTH / HS_KW_ERR_INTEGRITY for that blob alone (its output is then
 * zeroed and out_len[i] = 0). Returns HS_KW_OK, or an error for the whole batch (bad
 * KEK, allocation, libcrypto). */
int hs_kwp_rewrap_batch(const uint8_t *old_kek, size_t old_len,
                        const uint8_t *new_kek, size_t new_len,
                        size_t n, const uint8_t *in, const size_t *in_off, const size_t *in_len,
                        uint8_t *out, const size_t *out_off, size_t *out_len, int *status);
/* The number of blobs advanced together through each ECB call of the batch path. */
size_t hs_kw_lanes(void);
/* cdef-end */

#endif
