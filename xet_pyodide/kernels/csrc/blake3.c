/* Keyed BLAKE3 (32-byte output), written from the BLAKE3 specification.
 *
 * Message -> 1 KiB chunks (chunk counter t = chunk index) -> 64-byte blocks. Each chunk is a
 * chain of compressions starting from the key words; its last block gives the chunk's chaining
 * value (CV). CVs are combined pairwise by parent compressions (block = left CV || right CV,
 * counter 0) in a left-balanced binary tree; the final compression carries the ROOT flag. A
 * message of at most one chunk is its own root.
 *
 * Speed comes from the 4-way SIMD128 path: four full chunks at a time (one per lane, the
 * message words transposed so that lane i holds chunk i), and four parent nodes at a time.
 * Pairing adjacent CVs level by level (an odd CV is carried up unchanged) yields exactly the
 * left-balanced tree, which is what makes parents of one level independent and vectorizable.
 * Messages longer than 64 chunks are processed in aligned 64-chunk subtrees whose CVs go on a
 * small stack that is merged like the spec's incremental hasher does.
 */
#include "xk.h"
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>
#endif

enum { CHUNK_START = 1, CHUNK_END = 2, PARENT = 4, ROOT = 8, KEYED_HASH = 16 };
#define CHUNK_LEN 1024u
#define BATCH 64u /* chunks per subtree; a power of two */

static const u32 IV[8] = {0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A,
                          0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19};

/* Message word order of each of the 7 rounds (the permutation applied r times). */
static const u8 MS[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

/* ----------------------------------------------------------------------------- scalar */

#define G(a, b, c, d, x, y)                                                                   \
    do {                                                                                      \
        a = a + b + (x); d = rotr32(d ^ a, 16); c = c + d; b = rotr32(b ^ c, 12);             \
        a = a + b + (y); d = rotr32(d ^ a, 8);  c = c + d; b = rotr32(b ^ c, 7);              \
    } while (0)

/* One compression; writes the first 8 output words (all a 32-byte output needs) to out as
 * little-endian bytes. block must be 64 readable bytes; out may overlap block or cv. */
static void compress(const u32 cv[8], const u8 *block, u64 counter, u32 blen, u32 flags,
                     u8 out[32]) {
    u32 m[16];
    for (int i = 0; i < 16; i++) m[i] = ld32(block + 4 * i);
    u32 s0 = cv[0], s1 = cv[1], s2 = cv[2], s3 = cv[3], s4 = cv[4], s5 = cv[5], s6 = cv[6],
        s7 = cv[7];
    u32 s8 = IV[0], s9 = IV[1], s10 = IV[2], s11 = IV[3];
    u32 s12 = (u32)counter, s13 = (u32)(counter >> 32), s14 = blen, s15 = flags;
#pragma clang loop unroll(full)
    for (int r = 0; r < 7; r++) {
        const u8 *o = MS[r];
        G(s0, s4, s8, s12, m[o[0]], m[o[1]]);
        G(s1, s5, s9, s13, m[o[2]], m[o[3]]);
        G(s2, s6, s10, s14, m[o[4]], m[o[5]]);
        G(s3, s7, s11, s15, m[o[6]], m[o[7]]);
        G(s0, s5, s10, s15, m[o[8]], m[o[9]]);
        G(s1, s6, s11, s12, m[o[10]], m[o[11]]);
        G(s2, s7, s8, s13, m[o[12]], m[o[13]]);
        G(s3, s4, s9, s14, m[o[14]], m[o[15]]);
    }
    st32(out + 0, s0 ^ s8);   st32(out + 4, s1 ^ s9);
    st32(out + 8, s2 ^ s10);  st32(out + 12, s3 ^ s11);
    st32(out + 16, s4 ^ s12); st32(out + 20, s5 ^ s13);
    st32(out + 24, s6 ^ s14); st32(out + 28, s7 ^ s15);
}

XK_INLINE void load_words(u32 w[8], const u8 *p) {
    for (int i = 0; i < 8; i++) w[i] = ld32(p + 4 * i);
}

/* CV of one chunk of n (0..1024) bytes; root_flag is ROOT for a one-chunk message. */
static void chunk_cv(const u32 key[8], const u8 *p, u32 n, u64 counter, u32 root_flag,
                     u8 out[32]) {
    u32 cv[8];
    u8 tmp[32];
    for (int i = 0; i < 8; i++) cv[i] = key[i];
    u32 nblocks = n == 0 ? 1 : (n + 63) / 64;
    for (u32 b = 0; b + 1 < nblocks; b++) {
        compress(cv, p + 64 * b, counter, 64, KEYED_HASH | (b == 0 ? CHUNK_START : 0), tmp);
        load_words(cv, tmp);
    }
    u8 last[64];
    u32 off = 64 * (nblocks - 1), blen = n - off;
    xk_memset(last, 0, 64);
    xk_memcpy(last, p + off, blen);
    u32 flags = KEYED_HASH | CHUNK_END | root_flag | (nblocks == 1 ? CHUNK_START : 0);
    compress(cv, last, counter, blen, flags, out);
}

/* Parent CV of the 64-byte block left CV || right CV; out may alias block. */
XK_INLINE void parent_cv(const u32 key[8], const u8 *block, u32 root_flag, u8 out[32]) {
    compress(key, block, 0, 64, KEYED_HASH | PARENT | root_flag, out);
}

/* ----------------------------------------------------------------------------- 4-way SIMD */
#if defined(__wasm_simd128__)
typedef v128_t V;

XK_INLINE V vadd(V a, V b) { return wasm_i32x4_add(a, b); }
XK_INLINE V vxor(V a, V b) { return wasm_v128_xor(a, b); }
XK_INLINE V rot16(V x) {
    return wasm_i8x16_shuffle(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
}
XK_INLINE V rot8(V x) {
    return wasm_i8x16_shuffle(x, x, 1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
}
XK_INLINE V rot12(V x) { return wasm_v128_or(wasm_u32x4_shr(x, 12), wasm_i32x4_shl(x, 20)); }
XK_INLINE V rot7(V x) { return wasm_v128_or(wasm_u32x4_shr(x, 7), wasm_i32x4_shl(x, 25)); }

#define G4(a, b, c, d, x, y)                                                                  \
    do {                                                                                      \
        a = vadd(vadd(a, b), x); d = rot16(vxor(d, a)); c = vadd(c, d); b = rot12(vxor(b, c)); \
        a = vadd(vadd(a, b), y); d = rot8(vxor(d, a));  c = vadd(c, d); b = rot7(vxor(b, c));  \
    } while (0)

/* 4x4 transpose of 32-bit words: rows a..d in, columns out. */
XK_INLINE void transpose4(V a, V b, V c, V d, V *o0, V *o1, V *o2, V *o3) {
    V t0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
    V t2 = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);
    *o0 = wasm_i64x2_shuffle(t0, t2, 0, 2);
    *o1 = wasm_i64x2_shuffle(t0, t2, 1, 3);
    *o2 = wasm_i64x2_shuffle(t1, t3, 0, 2);
    *o3 = wasm_i64x2_shuffle(t1, t3, 1, 3);
}

/* Message words of the 64-byte blocks at p0..p3, lane i = block i. */
XK_INLINE void load_msg4(const u8 *p0, const u8 *p1, const u8 *p2, const u8 *p3, V m[16]) {
    for (int q = 0; q < 4; q++) {
        transpose4(wasm_v128_load(p0 + 16 * q), wasm_v128_load(p1 + 16 * q),
                   wasm_v128_load(p2 + 16 * q), wasm_v128_load(p3 + 16 * q), &m[4 * q],
                   &m[4 * q + 1], &m[4 * q + 2], &m[4 * q + 3]);
    }
}

/* The message words are read through a volatile pointer on purpose: that keeps them in memory
 * (one load per use, which x64 folds into the add) instead of in registers, where the 16 state
 * vectors already use up all 16 XMM registers. Measured in V8: ~3% faster than letting the
 * register allocator spill them. */
#define MSG(i) (*(volatile const V *)&m[i])

XK_INLINE void compress4(V h[8], const V m[16], V ctr_lo, V ctr_hi, u32 flags) {
    V v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
    V v8 = wasm_i32x4_splat((i32)IV[0]), v9 = wasm_i32x4_splat((i32)IV[1]);
    V v10 = wasm_i32x4_splat((i32)IV[2]), v11 = wasm_i32x4_splat((i32)IV[3]);
    V v12 = ctr_lo, v13 = ctr_hi, v14 = wasm_i32x4_splat(64), v15 = wasm_i32x4_splat((i32)flags);
#pragma clang loop unroll(full)
    for (int r = 0; r < 7; r++) {
        const u8 *o = MS[r];
        G4(v0, v4, v8, v12, MSG(o[0]), MSG(o[1]));
        G4(v1, v5, v9, v13, MSG(o[2]), MSG(o[3]));
        G4(v2, v6, v10, v14, MSG(o[4]), MSG(o[5]));
        G4(v3, v7, v11, v15, MSG(o[6]), MSG(o[7]));
        G4(v0, v5, v10, v15, MSG(o[8]), MSG(o[9]));
        G4(v1, v6, v11, v12, MSG(o[10]), MSG(o[11]));
        G4(v2, v7, v8, v13, MSG(o[12]), MSG(o[13]));
        G4(v3, v4, v9, v14, MSG(o[14]), MSG(o[15]));
    }
    h[0] = vxor(v0, v8);  h[1] = vxor(v1, v9);  h[2] = vxor(v2, v10); h[3] = vxor(v3, v11);
    h[4] = vxor(v4, v12); h[5] = vxor(v5, v13); h[6] = vxor(v6, v14); h[7] = vxor(v7, v15);
}

/* Lane i's 8 words of h -> 32 bytes at out + i * stride. */
XK_INLINE void store_cv4(const V h[8], u8 *out, u32 stride) {
    V a0, a1, a2, a3, b0, b1, b2, b3;
    transpose4(h[0], h[1], h[2], h[3], &a0, &a1, &a2, &a3);
    transpose4(h[4], h[5], h[6], h[7], &b0, &b1, &b2, &b3);
    wasm_v128_store(out, a0);              wasm_v128_store(out + 16, b0);
    wasm_v128_store(out + stride, a1);     wasm_v128_store(out + stride + 16, b1);
    wasm_v128_store(out + 2 * stride, a2); wasm_v128_store(out + 2 * stride + 16, b2);
    wasm_v128_store(out + 3 * stride, a3); wasm_v128_store(out + 3 * stride + 16, b3);
}

/* CVs of the four full chunks at p, p+1024, p+2048, p+3072 (counters counter..counter+3),
 * written to out[0..128). */
static void chunks4(const u32 key[8], const u8 *p, u64 counter, u8 *out) {
    V h[8], m[16];
    for (int i = 0; i < 8; i++) h[i] = wasm_i32x4_splat((i32)key[i]);
    V ctr_lo = wasm_i32x4_make((i32)counter, (i32)(counter + 1), (i32)(counter + 2),
                               (i32)(counter + 3));
    V ctr_hi = wasm_i32x4_make((i32)(counter >> 32), (i32)((counter + 1) >> 32),
                               (i32)((counter + 2) >> 32), (i32)((counter + 3) >> 32));
    for (u32 b = 0; b < 16; b++) {
        const u8 *q = p + 64 * b;
        load_msg4(q, q + CHUNK_LEN, q + 2 * CHUNK_LEN, q + 3 * CHUNK_LEN, m);
        u32 flags = KEYED_HASH | (b == 0 ? CHUNK_START : 0) | (b == 15 ? CHUNK_END : 0);
        compress4(h, m, ctr_lo, ctr_hi, flags);
    }
    store_cv4(h, out, 32);
}

/* Four parents: blocks at cvs[0..256) (eight CVs) -> four CVs at out[0..128). out may be cvs. */
static void parents4(const u32 key[8], const u8 *cvs, u8 *out) {
    V h[8], m[16];
    for (int i = 0; i < 8; i++) h[i] = wasm_i32x4_splat((i32)key[i]);
    load_msg4(cvs, cvs + 64, cvs + 128, cvs + 192, m);
    V zero = wasm_i32x4_splat(0);
    compress4(h, m, zero, zero, KEYED_HASH | PARENT);
    store_cv4(h, out, 32);
}
#define SIMD_WIDTH 4u
#else
#define SIMD_WIDTH 0u
static void chunks4(const u32 key[8], const u8 *p, u64 counter, u8 *out) {
    for (u32 i = 0; i < 4; i++) chunk_cv(key, p + i * CHUNK_LEN, CHUNK_LEN, counter + i, 0, out + 32 * i);
}
static void parents4(const u32 key[8], const u8 *cvs, u8 *out) {
    for (u32 i = 0; i < 4; i++) parent_cv(key, cvs + 64 * i, 0, out + 32 * i);
}
#endif

/* ----------------------------------------------------------------------------- tree */

/* CVs of the nfull full chunks at p (first counter `counter`) into cvs. */
static void full_chunk_cvs(const u32 key[8], const u8 *p, u32 nfull, u64 counter, u8 *cvs) {
    u32 j = 0;
    for (; j + 4 <= nfull; j += 4) chunks4(key, p + j * CHUNK_LEN, counter + j, cvs + 32 * j);
    for (; j < nfull; j++) chunk_cv(key, p + j * CHUNK_LEN, CHUNK_LEN, counter + j, 0, cvs + 32 * j);
}

/* Reduce r >= 1 CVs (in place in cvs) to the CV of their left-balanced subtree, written to out.
 * With root_flag = ROOT (requires r >= 2) the last parent is the root compression. */
static void reduce(const u32 key[8], u8 *cvs, u32 r, u32 root_flag, u8 out[32]) {
    while (r > 2) {
        u32 pairs = r / 2, j = 0;
        for (; j + 4 <= pairs; j += 4) parents4(key, cvs + 64 * j, cvs + 32 * j);
        for (; j < pairs; j++) parent_cv(key, cvs + 64 * j, 0, cvs + 32 * j);
        if (r & 1) xk_memmove(cvs + 32 * pairs, cvs + 32 * (r - 1), 32);
        r = pairs + (r & 1);
    }
    if (r == 2) parent_cv(key, cvs, root_flag, out);
    else xk_memmove(out, cvs, 32);
}

static void hash_message(const u32 key[8], const u8 *p, u32 n, u8 out[32]) {
    if (n <= CHUNK_LEN) {
        chunk_cv(key, p, n, 0, ROOT, out);
        return;
    }
    u8 cvs[BATCH * 32];
    u8 stack[32 * 32]; /* one entry per set bit of the subtree count: < 2^16 subtrees */
    u32 depth = 0;
    u32 nchunks = (n + CHUNK_LEN - 1) / CHUNK_LEN;
    u32 chunk = 0, subtrees = 0;
    while (nchunks - chunk > BATCH) {
        full_chunk_cvs(key, p + chunk * CHUNK_LEN, BATCH, chunk, cvs);
        reduce(key, cvs, BATCH, 0, stack + 32 * depth);
        depth++;
        chunk += BATCH;
        /* Merge completed subtrees: after the k-th subtree, once per trailing zero bit of k. */
        for (u32 t = ++subtrees; (t & 1) == 0; t >>= 1) {
            parent_cv(key, stack + 32 * (depth - 2), 0, stack + 32 * (depth - 2));
            depth--;
        }
    }
    u32 r = nchunks - chunk;
    u32 tail = n - (nchunks - 1) * CHUNK_LEN; /* bytes in the last chunk: 1..1024 */
    u32 nfull = tail == CHUNK_LEN ? r : r - 1;
    full_chunk_cvs(key, p + chunk * CHUNK_LEN, nfull, chunk, cvs);
    if (nfull < r)
        chunk_cv(key, p + (nchunks - 1) * CHUNK_LEN, tail, nchunks - 1, 0, cvs + 32 * nfull);
    if (depth == 0) {
        reduce(key, cvs, r, ROOT, out);
        return;
    }
    reduce(key, cvs, r, 0, stack + 32 * depth);
    depth++;
    while (depth > 1) {
        parent_cv(key, stack + 32 * (depth - 2), depth == 2 ? ROOT : 0, stack + 32 * (depth - 2));
        depth--;
    }
    xk_memcpy(out, stack, 32);
}

/* ----------------------------------------------------------------------------- exports */

/* Keyed BLAKE3 of one message: data[0..len) with the 32-byte key -> 32 bytes at out. */
void XK_EXPORT(xk_blake3_keyed)(const u8 *data, u32 len, const u8 *key, u8 *out) {
    u32 k[8];
    load_words(k, key);
    hash_message(k, data, len, out);
}

/* Keyed BLAKE3 of count consecutive messages: message i has lengths[i] bytes (u32 array) and
 * starts where message i-1 ended; its digest goes to out + 32 * i. */
void XK_EXPORT(xk_blake3_keyed_many)(const u8 *data, const u32 *lengths, u32 count,
                                     const u8 *key, u8 *out) {
    u32 k[8];
    load_words(k, key);
    for (u32 i = 0; i < count; i++) {
        u32 n = lengths[i];
        hash_message(k, data, n, out + 32 * i);
        data += n;
    }
}
