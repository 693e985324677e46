/* Byte grouping by 4 (xet compression scheme 2): split = data[0::4] + data[1::4] + data[2::4]
 * + data[3::4]; regroup is the inverse. Group k holds n/4 + (k < n%4) bytes.
 *
 * SIMD path: 64 input bytes -> 16 bytes of each group. A byte shuffle gathers each 16-byte
 * vector's bytes by position mod 4 (a 4x4 byte transpose), then a 4x4 transpose of 32-bit
 * words assembles each group's 16 bytes. Both steps are their own inverse, so regroup runs the
 * same two steps in the opposite order.
 */
#include "xk.h"
#if defined(__wasm_simd128__)
#include <wasm_simd128.h>

XK_INLINE v128_t bytes_by_mod4(v128_t x) {
    return wasm_i8x16_shuffle(x, x, 0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

XK_INLINE void transpose4(v128_t a, v128_t b, v128_t c, v128_t d, v128_t *o) {
    v128_t t0 = wasm_i32x4_shuffle(a, b, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(a, b, 2, 6, 3, 7);
    v128_t t2 = wasm_i32x4_shuffle(c, d, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(c, d, 2, 6, 3, 7);
    o[0] = wasm_i64x2_shuffle(t0, t2, 0, 2);
    o[1] = wasm_i64x2_shuffle(t0, t2, 1, 3);
    o[2] = wasm_i64x2_shuffle(t1, t3, 0, 2);
    o[3] = wasm_i64x2_shuffle(t1, t3, 1, 3);
}
#endif

static void group_starts(u32 n, u32 start[4]) {
    u32 q = n / 4, r = n % 4, pos = 0;
    for (u32 k = 0; k < 4; k++) {
        start[k] = pos;
        pos += q + (k < r ? 1 : 0);
    }
}

/* src[0..n) -> dst[0..n) grouped. src and dst must not overlap. */
void XK_EXPORT(xk_bg4_split)(const u8 *src, u32 n, u8 *dst) {
    u32 st[4];
    group_starts(n, st);
    u8 *g0 = dst + st[0], *g1 = dst + st[1], *g2 = dst + st[2], *g3 = dst + st[3];
    u32 i = 0;
#if defined(__wasm_simd128__)
    for (; i + 64 <= n; i += 64) {
        v128_t o[4];
        transpose4(bytes_by_mod4(wasm_v128_load(src + i)),
                   bytes_by_mod4(wasm_v128_load(src + i + 16)),
                   bytes_by_mod4(wasm_v128_load(src + i + 32)),
                   bytes_by_mod4(wasm_v128_load(src + i + 48)), o);
        u32 j = i / 4;
        wasm_v128_store(g0 + j, o[0]);
        wasm_v128_store(g1 + j, o[1]);
        wasm_v128_store(g2 + j, o[2]);
        wasm_v128_store(g3 + j, o[3]);
    }
#endif
    for (; i + 4 <= n; i += 4) {
        u32 j = i / 4;
        g0[j] = src[i]; g1[j] = src[i + 1]; g2[j] = src[i + 2]; g3[j] = src[i + 3];
    }
    u8 *g[4] = {g0, g1, g2, g3};
    for (u32 k = 0; i < n; i++, k++) g[k][i / 4] = src[i];
}

/* src[0..n) grouped -> dst[0..n) interleaved. src and dst must not overlap. */
void XK_EXPORT(xk_bg4_regroup)(const u8 *src, u32 n, u8 *dst) {
    u32 st[4];
    group_starts(n, st);
    const u8 *g0 = src + st[0], *g1 = src + st[1], *g2 = src + st[2], *g3 = src + st[3];
    u32 i = 0;
#if defined(__wasm_simd128__)
    for (; i + 64 <= n; i += 64) {
        v128_t o[4];
        u32 j = i / 4;
        transpose4(wasm_v128_load(g0 + j), wasm_v128_load(g1 + j), wasm_v128_load(g2 + j),
                   wasm_v128_load(g3 + j), o);
        wasm_v128_store(dst + i, bytes_by_mod4(o[0]));
        wasm_v128_store(dst + i + 16, bytes_by_mod4(o[1]));
        wasm_v128_store(dst + i + 32, bytes_by_mod4(o[2]));
        wasm_v128_store(dst + i + 48, bytes_by_mod4(o[3]));
    }
#endif
    for (; i + 4 <= n; i += 4) {
        u32 j = i / 4;
        dst[i] = g0[j]; dst[i + 1] = g1[j]; dst[i + 2] = g2[j]; dst[i + 3] = g3[j];
    }
    const u8 *g[4] = {g0, g1, g2, g3};
    for (u32 k = 0; i < n; i++, k++) dst[i] = g[k][i / 4];
}

/* hf_xet's BG4 predictor statistic: for each byte position modulo 4, the histogram of
 * popcount(byte) over src[0..n): out[9 * k + c] (u32) counts the bytes src[i], i % 4 == k,
 * with c bits set. The decision itself (a KL divergence) stays in Python, so that its
 * floating-point result is exactly the reference's. */
void XK_EXPORT(xk_popcount_hist)(const u8 *src, u32 n, u32 *out) {
    u32 h[4][9];
    xk_memset(h, 0, sizeof h);
    u32 i = 0;
    for (; i + 4 <= n; i += 4) {
        u32 w = ld32(src + i);
        h[0][__builtin_popcount(w & 0xFFu)]++;
        h[1][__builtin_popcount((w >> 8) & 0xFFu)]++;
        h[2][__builtin_popcount((w >> 16) & 0xFFu)]++;
        h[3][__builtin_popcount(w >> 24)]++;
    }
    for (u32 k = 0; i < n; i++, k++) h[k][__builtin_popcount(src[i])]++;
    xk_memcpy(out, h, sizeof h);
}
