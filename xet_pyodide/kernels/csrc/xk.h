/* Shared definitions for the xet_pyodide kernels.
 *
 * Freestanding C: no libc. The same sources also compile natively (gcc/clang on the host) for
 * the benchmark's native gear reference and for sanitizer builds, so nothing here may assume
 * wasm except behind __wasm__. Loads and stores go through memcpy so that unaligned access is
 * well defined; clang turns them into single (unaligned) wasm loads/stores.
 */
#ifndef XK_H
#define XK_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef int i32;
typedef unsigned long usize;

#if defined(__wasm__)
#define XK_EXPORT(name) __attribute__((export_name(#name), used)) name
#else
#define XK_EXPORT(name) __attribute__((visibility("default"), used)) name
#endif

#define XK_INLINE static inline __attribute__((always_inline))

/* With -ffreestanding clang still emits calls to memcpy/memset for large copies; on wasm with
 * -mbulk-memory the builtins lower to memory.copy / memory.fill. The definitions in arena.c
 * satisfy any call the compiler still emits. */
void *memcpy(void *dst, const void *src, usize n);
void *memmove(void *dst, const void *src, usize n);
void *memset(void *dst, int c, usize n);
#define xk_memcpy(d, s, n) __builtin_memcpy((d), (s), (n))
#define xk_memmove(d, s, n) __builtin_memmove((d), (s), (n))
#define xk_memset(d, c, n) __builtin_memset((d), (c), (n))

XK_INLINE u16 ld16(const u8 *p) { u16 v; __builtin_memcpy(&v, p, 2); return v; }
XK_INLINE u32 ld32(const u8 *p) { u32 v; __builtin_memcpy(&v, p, 4); return v; }
XK_INLINE u64 ld64(const u8 *p) { u64 v; __builtin_memcpy(&v, p, 8); return v; }
XK_INLINE void st16(u8 *p, u16 v) { __builtin_memcpy(p, &v, 2); }
XK_INLINE void st32(u8 *p, u32 v) { __builtin_memcpy(p, &v, 4); }
XK_INLINE void st64(u8 *p, u64 v) { __builtin_memcpy(p, &v, 8); }

XK_INLINE u32 rotl32(u32 x, int r) { return (x << r) | (x >> (32 - r)); }
XK_INLINE u32 rotr32(u32 x, int r) { return (x >> r) | (x << (32 - r)); }

/* Kernels that other kernels call (defined in lz4.c, xxh32.c, bg4.c, blake3.c). */
i32 xk_lz4_decode_after(const u8 *src, u32 n, const u8 *lo, u8 *dst, u32 cap);
u32 xk_xxh32(const u8 *p, u32 n, u32 seed);
void xk_bg4_regroup(const u8 *src, u32 n, u8 *dst);
void xk_bg4_split(const u8 *src, u32 n, u8 *dst);
u32 xk_lz4_bound(u32 n);
i32 xk_lz4_compress(const u8 *src, u32 n, u8 *dst, u32 cap);
void xk_crc64_nvme(const u8 *data, u32 len, u8 *crc_ptr);
void xk_blake3_keyed_many(const u8 *data, const u32 *lengths, u32 count, const u8 *key, u8 *out);

#endif
