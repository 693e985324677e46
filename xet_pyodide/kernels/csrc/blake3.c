/* Keyed BLAKE3 (32-byte output), written from the BLAKE3 specification.
 *
 * Message -> 1 KiB chunks (chunk counter t = chunk index) -> 64-byte blocks. Each chunk is a
 * chain of compressions starting from the key words; its last block gives the chunk's chaining
 * value (CV). CVs are combined pairwise by parent compressions (block = left CV || right CV,
 * counter 0) in a left-balanced binary tree; the final compression carries the ROOT flag. A
 * message of at most one chunk is its own root.
 *
 * Speed comes from the SIMD128 path: eight full chunks at a time as two interleaved 4-lane
 * compressions (one chunk per lane, the message words transposed so that lane i holds chunk
 * i), then four at a time, and parent nodes eight or four at a time. Pairing adjacent CVs
 * level by level (an odd CV is carried up unchanged) yields exactly the left-balanced tree,
 * which is what makes parents of one level independent and vectorizable. Messages longer than
 * 64 chunks are processed in aligned 64-chunk subtrees whose CVs go on a small stack that is
 * merged like the spec's incremental hasher does.
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

/* Message word order of each of the 7 rounds (the permutation applied r times). Written
 * once as macros: MS below, and MSP (the same order as addresses) for the SIMD path. */
#define ROUND0 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#define ROUND1 2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8
#define ROUND2 3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1
#define ROUND3 10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6
#define ROUND4 12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4
#define ROUND5 9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7
#define ROUND6 11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13
static const u8 MS[7][16] = {{ROUND0}, {ROUND1}, {ROUND2}, {ROUND3},
                             {ROUND4}, {ROUND5}, {ROUND6}};

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

/* ----------------------------------------------------------------------------- SIMD128 */
#if defined(__wasm_simd128__)
typedef v128_t V;

XK_INLINE V vadd(V a, V b) { return wasm_i32x4_add(a, b); }
XK_INLINE V vxor(V a, V b) { return wasm_v128_xor(a, b); }
/* Rotations by 16 and 8 are byte permutations. They are written as i8x16.swizzle with a
 * constant in-range mask on purpose: V8 lowers that to a single pshufb whose mask constant is
 * materialized once per function and kept in a register, while an i8x16.shuffle with the same
 * pattern rebuilds its mask through general-purpose registers at every use (4 extra
 * instructions) and the 16-bit one becomes pshuflw + pshufhw. Measured in Chromium 156: a few %
 * faster overall. 12 and 7 are shift + shift + or. */
XK_INLINE V rot16(V x) {
    return wasm_i8x16_swizzle(x, wasm_i8x16_const(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13));
}
XK_INLINE V rot8(V x) {
    return wasm_i8x16_swizzle(x, wasm_i8x16_const(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12));
}
XK_INLINE V rot12(V x) { return wasm_v128_or(wasm_u32x4_shr(x, 12), wasm_i32x4_shl(x, 20)); }
XK_INLINE V rot7(V x) { return wasm_v128_or(wasm_u32x4_shr(x, 7), wasm_i32x4_shl(x, 25)); }

/* One G on four lanes. The "c" row of the state lives in memory (cs[ci], volatile): one load
 * and one store per G. That leaves a, b, d (12 vectors) + 2 swizzle masks, which fits x64's 16
 * XMM registers for compress4 and halves the register allocator's spills for compress8; c is
 * the row with the fewest uses per G (4, vs 6 or more for the others).
 * Measured in Chromium 156: ~7% faster than 16 state vectors in locals. */
#define G4(a, b, ci, d, x, y)                                                                 \
    do {                                                                                      \
        V c_ = cs[ci];                                                                        \
        a = vadd(vadd(a, b), x); d = rot16(vxor(d, a)); c_ = vadd(c_, d); b = rot12(vxor(b, c_)); \
        a = vadd(vadd(a, b), y); d = rot8(vxor(d, a));  c_ = vadd(c_, d); b = rot7(vxor(b, c_));  \
        cs[ci] = c_;                                                                          \
    } while (0)

/* G4 with the "d" row in memory as well (ds[di], volatile), for compress8: the two
 * interleaved sets then keep only their a and b rows (16 vectors) in registers. */
#define G4M(a, b, ci, di, x, y)                                                               \
    do {                                                                                      \
        V c_ = cs[ci], d_ = ds[di];                                                           \
        a = vadd(vadd(a, b), x); d_ = rot16(vxor(d_, a)); c_ = vadd(c_, d_); b = rot12(vxor(b, c_)); \
        a = vadd(vadd(a, b), y); d_ = rot8(vxor(d_, a));  c_ = vadd(c_, d_); b = rot7(vxor(b, c_));  \
        cs[ci] = c_; ds[di] = d_;                                                             \
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

/* Message words of the 64-byte blocks at p, p + stride, p + 2 stride, p + 3 stride; lane i =
 * block i. */
XK_INLINE void load_msg4(const u8 *p, u32 stride, V m[16]) {
    for (int q = 0; q < 4; q++) {
        transpose4(wasm_v128_load(p + 16 * q), wasm_v128_load(p + stride + 16 * q),
                   wasm_v128_load(p + 2 * stride + 16 * q), wasm_v128_load(p + 3 * stride + 16 * q),
                   &m[4 * q], &m[4 * q + 1], &m[4 * q + 2], &m[4 * q + 3]);
    }
}

/* The message words are read through a volatile pointer on purpose: that keeps them in memory
 * (one load per use) instead of in registers, which the state vectors need (x64 has 16 XMM
 * registers; V8 does not rematerialize or fold loads on its own). */
#define MSG(m, i) (*(volatile const V *)&(m)[i])

/* One 4-lane compression (lane i = an independent block), h = 8 CV vectors in and out; block
 * lengths and flags per lane. Not inlined: it only serves remainders, message tails and
 * parents, so one copy is enough. */
__attribute__((noinline)) static void compress4(V h[8], const V m[16], V ctr_lo, V ctr_hi,
                                                V blen, V flags) {
    volatile V cs[4];
    V v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
    for (int i = 0; i < 4; i++) cs[i] = wasm_i32x4_splat((i32)IV[i]);
    V v12 = ctr_lo, v13 = ctr_hi, v14 = blen, v15 = flags;
#pragma clang loop unroll(full)
    for (int r = 0; r < 7; r++) {
        const u8 *o = MS[r];
        G4(v0, v4, 0, v12, MSG(m, o[0]), MSG(m, o[1]));
        G4(v1, v5, 1, v13, MSG(m, o[2]), MSG(m, o[3]));
        G4(v2, v6, 2, v14, MSG(m, o[4]), MSG(m, o[5]));
        G4(v3, v7, 3, v15, MSG(m, o[6]), MSG(m, o[7]));
        G4(v0, v5, 2, v15, MSG(m, o[8]), MSG(m, o[9]));
        G4(v1, v6, 3, v12, MSG(m, o[10]), MSG(m, o[11]));
        G4(v2, v7, 0, v13, MSG(m, o[12]), MSG(m, o[13]));
        G4(v3, v4, 1, v14, MSG(m, o[14]), MSG(m, o[15]));
    }
    h[0] = vxor(v0, cs[0]); h[1] = vxor(v1, cs[1]); h[2] = vxor(v2, cs[2]); h[3] = vxor(v3, cs[3]);
    h[4] = vxor(v4, v12);   h[5] = vxor(v5, v13);   h[6] = vxor(v6, v14);   h[7] = vxor(v7, v15);
}

/* Two independent 4-lane compressions interleaved (8 lanes): twice the instruction-level
 * parallelism for the CPU. h = 16 CV vectors (set v, then set w), the 32 message vectors in MBUF
 * (same order), ctr = {v low, v high, w low, w high}. Inlined into its two callers (faster
 * than a separate function with h in memory).
 *
 * Layout, measured in Chromium 156 (kernel-only BLAKE3 over 64 KiB, 4-5 alternating runs of
 * each variant in one page, AMD EPYC with AVX-512): the c and d rows of both sets live in
 * memory (cs, ds: one load and one store each per G), and the G steps are grouped by half
 * round — v's four column Gs, w's four, v's four diagonal Gs, w's four — instead of
 * alternating v and w G by G. Each set's rows then stay untouched for four Gs, so V8's
 * register allocator spills far less, and the CPU's reorder window still overlaps the two
 * sets; a c or d row stored by a column G is loaded by a diagonal G four Gs later, long after
 * the store. Medians: G by G with c in memory (the previous layout) 2.13 GB/s; grouped,
 * c in memory 2.25; grouped, c in registers 1.97; grouped, c and d in memory 2.37 (+11%);
 * the same with the message words also left to the allocator (not volatile) 2.29. */
/* The rounds are a loop, not unrolled: unrolled, chunks8 was ~32 KB of x64 code (every
 * instruction 5-9 bytes) and ran at ~3.5 instructions per cycle, most likely because it
 * does not fit the CPU's op cache (no performance counters here to confirm). The loop body
 * (one round, ~480 instructions, ~13 KB function) does. The message words of a round are
 * then found through a table: the caller writes the message to MBUF (a fixed address) and
 * MSP[r][k] is the address of round r's k-th word of set v (set w: + 16 vectors), so a word
 * costs one i32 load plus one vector load. Measured (64 KiB messages, kernel only, AMD EPYC
 * Zen 5): Node 20 2.32 -> 2.48 GB/s, Chromium 156 2.38 -> 2.50 (medians, alternating runs).
 * Tried in the same loop form and not better: rolled round loop unrolled by 2 (same), three
 * or four interleaved sets (12/16 lanes: 2.19 / 2.26, spills), v and w G by G or in pairs
 * (2.30 / 2.29), d rows in registers (2.46), rot16 as i8x16.shuffle (2.36) or shifts
 * (2.26), rot8 as shifts (2.27), the swizzle masks read through volatile (2.27).
 * MBUF is module state, like the arena: every instance has its own memory and the kernels
 * are not reentrant. */
static V MBUF[32];
#define P16_(a, b, c, d, e, f, g, h, i, j, k, l, m_, n, o, p)                                  \
    {MBUF + a, MBUF + b, MBUF + c,  MBUF + d, MBUF + e, MBUF + f, MBUF + g, MBUF + h,          \
     MBUF + i, MBUF + j, MBUF + k,  MBUF + l, MBUF + m_, MBUF + n, MBUF + o, MBUF + p}
#define P16(...) P16_(__VA_ARGS__)
static const V *const MSP[7][16] = {P16(ROUND0), P16(ROUND1), P16(ROUND2), P16(ROUND3),
                                    P16(ROUND4), P16(ROUND5), P16(ROUND6)};
#undef P16
#undef P16_
#define MSGP(p) (*(volatile const V *)(p))

XK_INLINE void compress8(V h[16], const V ctr[4], u32 flags) {
    volatile V cs[8]; /* c rows: set v at 0..3, set w at 4..7 */
    volatile V ds[8]; /* d rows, same order */
    V v0 = h[0], v1 = h[1], v2 = h[2], v3 = h[3], v4 = h[4], v5 = h[5], v6 = h[6], v7 = h[7];
    V w0 = h[8], w1 = h[9], w2 = h[10], w3 = h[11], w4 = h[12], w5 = h[13], w6 = h[14], w7 = h[15];
    for (int i = 0; i < 8; i++) cs[i] = wasm_i32x4_splat((i32)IV[i & 3]);
    ds[0] = ctr[0]; ds[1] = ctr[1]; ds[2] = wasm_i32x4_splat(64); ds[3] = wasm_i32x4_splat((i32)flags);
    ds[4] = ctr[2]; ds[5] = ctr[3]; ds[6] = ds[2];                ds[7] = ds[3];
#pragma clang loop unroll(disable)
    for (const V *const *o = MSP[0]; o != MSP[0] + 7 * 16; o += 16) {
        /* columns: G(s0,s4,s8,s12) .. G(s3,s7,s11,s15) */
        G4M(v0, v4, 0, 0, MSGP(o[0]), MSGP(o[1]));
        G4M(v1, v5, 1, 1, MSGP(o[2]), MSGP(o[3]));
        G4M(v2, v6, 2, 2, MSGP(o[4]), MSGP(o[5]));
        G4M(v3, v7, 3, 3, MSGP(o[6]), MSGP(o[7]));
        G4M(w0, w4, 4, 4, MSGP(o[0] + 16), MSGP(o[1] + 16));
        G4M(w1, w5, 5, 5, MSGP(o[2] + 16), MSGP(o[3] + 16));
        G4M(w2, w6, 6, 6, MSGP(o[4] + 16), MSGP(o[5] + 16));
        G4M(w3, w7, 7, 7, MSGP(o[6] + 16), MSGP(o[7] + 16));
        /* diagonals: G(s0,s5,s10,s15), G(s1,s6,s11,s12), G(s2,s7,s8,s13), G(s3,s4,s9,s14) */
        G4M(v0, v5, 2, 3, MSGP(o[8]), MSGP(o[9]));
        G4M(v1, v6, 3, 0, MSGP(o[10]), MSGP(o[11]));
        G4M(v2, v7, 0, 1, MSGP(o[12]), MSGP(o[13]));
        G4M(v3, v4, 1, 2, MSGP(o[14]), MSGP(o[15]));
        G4M(w0, w5, 6, 7, MSGP(o[8] + 16), MSGP(o[9] + 16));
        G4M(w1, w6, 7, 4, MSGP(o[10] + 16), MSGP(o[11] + 16));
        G4M(w2, w7, 4, 5, MSGP(o[12] + 16), MSGP(o[13] + 16));
        G4M(w3, w4, 5, 6, MSGP(o[14] + 16), MSGP(o[15] + 16));
    }
    h[0] = vxor(v0, cs[0]);  h[1] = vxor(v1, cs[1]);  h[2] = vxor(v2, cs[2]);  h[3] = vxor(v3, cs[3]);
    h[4] = vxor(v4, ds[0]);  h[5] = vxor(v5, ds[1]);  h[6] = vxor(v6, ds[2]);  h[7] = vxor(v7, ds[3]);
    h[8] = vxor(w0, cs[4]);  h[9] = vxor(w1, cs[5]);  h[10] = vxor(w2, cs[6]); h[11] = vxor(w3, cs[7]);
    h[12] = vxor(w4, ds[4]); h[13] = vxor(w5, ds[5]); h[14] = vxor(w6, ds[6]); h[15] = vxor(w7, ds[7]);
}

/* Lane i's 8 words of h -> 32 bytes at out + 32 * i. */
XK_INLINE void store_cv4(const V h[8], u8 *out) {
    V a0, a1, a2, a3, b0, b1, b2, b3;
    transpose4(h[0], h[1], h[2], h[3], &a0, &a1, &a2, &a3);
    transpose4(h[4], h[5], h[6], h[7], &b0, &b1, &b2, &b3);
    wasm_v128_store(out, a0);      wasm_v128_store(out + 16, b0);
    wasm_v128_store(out + 32, a1); wasm_v128_store(out + 48, b1);
    wasm_v128_store(out + 64, a2); wasm_v128_store(out + 80, b2);
    wasm_v128_store(out + 96, a3); wasm_v128_store(out + 112, b3);
}

XK_INLINE void splat_key(V h[8], const u32 key[8]) {
    for (int i = 0; i < 8; i++) h[i] = wasm_i32x4_splat((i32)key[i]);
}

/* Counters c..c+3: low words into *lo, high words into *hi. */
XK_INLINE void counters4(u64 c, V *lo, V *hi) {
    *lo = wasm_i32x4_make((i32)c, (i32)(c + 1), (i32)(c + 2), (i32)(c + 3));
    *hi = wasm_i32x4_make((i32)(c >> 32), (i32)((c + 1) >> 32), (i32)((c + 2) >> 32),
                          (i32)((c + 3) >> 32));
}

XK_INLINE u32 block_flags(u32 b) {
    return KEYED_HASH | (b == 0 ? CHUNK_START : 0) | (b == 15 ? CHUNK_END : 0);
}

/* CVs of the four full chunks at p, p+1024, p+2048, p+3072 (counters counter..counter+3),
 * written to out[0..128). */
static void chunks4(const u32 key[8], const u8 *p, u64 counter, u8 *out) {
    V h[8], m[16], lo, hi;
    splat_key(h, key);
    counters4(counter, &lo, &hi);
    for (u32 b = 0; b < 16; b++) {
        load_msg4(p + 64 * b, CHUNK_LEN, m);
        compress4(h, m, lo, hi, wasm_i32x4_splat(64), wasm_i32x4_splat((i32)block_flags(b)));
    }
    store_cv4(h, out);
}

/* CVs of the eight full chunks at p .. p+7168 (counters counter..counter+7) -> out[0..256). */
static void chunks8(const u32 key[8], const u8 *p, u64 counter, u8 *out) {
    V h[16], ctr[4];
    splat_key(h, key);
    splat_key(h + 8, key);
    counters4(counter, &ctr[0], &ctr[1]);
    counters4(counter + 4, &ctr[2], &ctr[3]);
    for (u32 b = 0; b < 16; b++) {
        load_msg4(p + 64 * b, CHUNK_LEN, MBUF);
        load_msg4(p + 4 * CHUNK_LEN + 64 * b, CHUNK_LEN, MBUF + 16);
        compress8(h, ctr, block_flags(b));
    }
    store_cv4(h, out);
    store_cv4(h + 8, out + 128);
}

/* Four parents: blocks at cvs[0..256) (eight CVs) -> four CVs at out[0..128). out may be cvs. */
static void parents4(const u32 key[8], const u8 *cvs, u8 *out) {
    V h[8], m[16], zero = wasm_i32x4_splat(0);
    splat_key(h, key);
    load_msg4(cvs, 64, m);
    compress4(h, m, zero, zero, wasm_i32x4_splat(64), wasm_i32x4_splat(KEYED_HASH | PARENT));
    store_cv4(h, out);
}

/* Eight parents: cvs[0..512) (sixteen CVs) -> eight CVs at out[0..256). out may be cvs. */
static void parents8(const u32 key[8], const u8 *cvs, u8 *out) {
    V h[16], zero = wasm_i32x4_splat(0);
    const V ctr[4] = {zero, zero, zero, zero};
    splat_key(h, key);
    splat_key(h + 8, key);
    load_msg4(cvs, 64, MBUF);
    load_msg4(cvs + 256, 64, MBUF + 16);
    compress8(h, ctr, KEYED_HASH | PARENT);
    store_cv4(h, out);
    store_cv4(h + 8, out + 128);
}

/* The last chunks of a message: nfull (0..3) full chunks at p followed by a partial chunk of
 * tail (0..1023) bytes, nfull + (tail > 0) >= 2 lanes in all, counters counter.. -> their CVs at
 * out. The bytes are copied into a zero-padded buffer first, so no lane reads past the message
 * (which may end at the end of linear memory) and the partial last block is already padded;
 * unused lanes hash zeros and are dropped. The partial lane has fewer blocks than the others:
 * its CV is taken right after its last block, with CHUNK_END and the short length set for
 * that lane only. */
static void tail4(const u32 key[8], const u8 *p, u32 nfull, u32 tail, u64 counter, u8 *out) {
    u8 buf[4 * CHUNK_LEN];
    u8 cv[128];
    u32 n = nfull * CHUNK_LEN + tail;
    xk_memcpy(buf, p, n);
    xk_memset(buf + n, 0, sizeof buf - n);
    u32 tail_blocks = (tail + 63) / 64; /* 0 if there is no partial chunk */
    u32 nblocks = nfull ? 16 : tail_blocks;
    V h[8], m[16], lo, hi;
    splat_key(h, key);
    counters4(counter, &lo, &hi);
    for (u32 b = 0; b < nblocks; b++) {
        u32 fl[4], bl[4];
        for (u32 k = 0; k < 4; k++) {
            u32 last = k < nfull ? 15 : tail_blocks - 1;
            fl[k] = KEYED_HASH | (b == 0 ? CHUNK_START : 0) | (b == last ? CHUNK_END : 0);
            bl[k] = k == nfull && b == last ? tail - 64 * last : 64;
        }
        load_msg4(buf + 64 * b, CHUNK_LEN, m);
        compress4(h, m, lo, hi, wasm_i32x4_make((i32)bl[0], (i32)bl[1], (i32)bl[2], (i32)bl[3]),
                  wasm_i32x4_make((i32)fl[0], (i32)fl[1], (i32)fl[2], (i32)fl[3]));
        if (tail && b == tail_blocks - 1) {
            store_cv4(h, cv);
            xk_memcpy(out + 32 * nfull, cv + 32 * nfull, 32);
        }
    }
    if (nfull) {
        store_cv4(h, cv);
        xk_memcpy(out, cv, 32 * nfull);
    }
}
#else
static void chunks4(const u32 key[8], const u8 *p, u64 counter, u8 *out) {
    for (u32 i = 0; i < 4; i++) chunk_cv(key, p + i * CHUNK_LEN, CHUNK_LEN, counter + i, 0, out + 32 * i);
}
static void chunks8(const u32 key[8], const u8 *p, u64 counter, u8 *out) {
    chunks4(key, p, counter, out);
    chunks4(key, p + 4 * CHUNK_LEN, counter + 4, out + 128);
}
static void parents4(const u32 key[8], const u8 *cvs, u8 *out) {
    for (u32 i = 0; i < 4; i++) parent_cv(key, cvs + 64 * i, 0, out + 32 * i);
}
static void parents8(const u32 key[8], const u8 *cvs, u8 *out) {
    parents4(key, cvs, out);
    parents4(key, cvs + 256, out + 128);
}
static void tail4(const u32 key[8], const u8 *p, u32 nfull, u32 tail, u64 counter, u8 *out) {
    for (u32 i = 0; i < nfull; i++) chunk_cv(key, p + i * CHUNK_LEN, CHUNK_LEN, counter + i, 0, out + 32 * i);
    if (tail) chunk_cv(key, p + nfull * CHUNK_LEN, tail, counter + nfull, 0, out + 32 * nfull);
}
#endif

/* ----------------------------------------------------------------------------- tree */

/* CVs of nfull full chunks at p followed by a partial chunk of tail (0..1023) bytes (first
 * counter `counter`) into cvs. */
static void chunk_cvs(const u32 key[8], const u8 *p, u32 nfull, u32 tail, u64 counter, u8 *cvs) {
    u32 j = 0;
    for (; j + 8 <= nfull; j += 8) chunks8(key, p + j * CHUNK_LEN, counter + j, cvs + 32 * j);
    for (; j + 4 <= nfull; j += 4) chunks4(key, p + j * CHUNK_LEN, counter + j, cvs + 32 * j);
    p += j * CHUNK_LEN;
    counter += j;
    cvs += 32 * j;
    nfull -= j;
    if (nfull + (tail ? 1 : 0) >= 2) {
        tail4(key, p, nfull, tail, counter, cvs);
    } else if (nfull) {
        chunk_cv(key, p, CHUNK_LEN, counter, 0, cvs);
    } else if (tail) {
        chunk_cv(key, p, tail, counter, 0, cvs);
    }
}

/* Reduce r >= 1 CVs (in place in cvs) to the CV of their left-balanced subtree, written to out.
 * With root_flag = ROOT (requires r >= 2) the last parent is the root compression. */
static void reduce(const u32 key[8], u8 *cvs, u32 r, u32 root_flag, u8 out[32]) {
    while (r > 2) {
        u32 pairs = r / 2, j = 0;
        for (; j + 8 <= pairs; j += 8) parents8(key, cvs + 64 * j, cvs + 32 * j);
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
        chunk_cvs(key, p + chunk * CHUNK_LEN, BATCH, 0, chunk, cvs);
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
    chunk_cvs(key, p + chunk * CHUNK_LEN, nfull, tail == CHUNK_LEN ? 0 : tail, chunk, cvs);
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
