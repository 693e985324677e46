/* The scratch arena: one growable region starting at __heap_base.
 *
 * The host lays out a call's inputs and outputs inside [base, base + n) after asking for n
 * bytes with xk_reserve(n). Nothing is allocated per call, so there is nothing to free: the
 * region is reused by the next call, and linear memory only grows to the largest n requested.
 * Kernels keep their own small state in static memory (.bss) or on the shadow stack.
 */
#include "xk.h"

#define XK_ABI_VERSION 1
#define XK_PAGE 65536u

#if defined(__wasm__)
extern u8 __heap_base;

/* The compiler may still emit calls to these; with -mbulk-memory the builtins become
 * memory.copy / memory.fill instructions, so these are not recursive. */
void *memcpy(void *dst, const void *src, usize n) { __builtin_memcpy(dst, src, n); return dst; }
void *memmove(void *dst, const void *src, usize n) { __builtin_memmove(dst, src, n); return dst; }
void *memset(void *dst, int c, usize n) { __builtin_memset(dst, c, n); return dst; }

static u32 arena_base(void) { return ((u32)(usize)&__heap_base + 63u) & ~63u; }

/* Make sure [base, base + n) is inside linear memory; return base, or 0 if memory.grow failed
 * (the host's memory limit, 2 GiB, was reached). */
u32 XK_EXPORT(xk_reserve)(u32 n) {
    u64 base = arena_base();
    u64 need = base + (u64)n;
    u64 have = (u64)__builtin_wasm_memory_size(0) * XK_PAGE;
    if (need > have) {
        u64 pages = (need - have + XK_PAGE - 1) / XK_PAGE;
        if (__builtin_wasm_memory_grow(0, (usize)pages) == (usize)-1) return 0;
    }
    return (u32)base;
}
#endif

u32 XK_EXPORT(xk_abi_version)(void) { return XK_ABI_VERSION; }
