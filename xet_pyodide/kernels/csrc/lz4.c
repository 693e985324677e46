/* LZ4 block format, written from the format description (sequences of
 * token | literal-length bytes | literals | 16-bit offset | match-length bytes).
 *
 * Compressor: a greedy single-probe hash-table matcher (5-byte hashes, 2^14 entries of
 * positions) with the usual acceleration on incompressible stretches. It honours the
 * end-of-block rules: the last 5 bytes are literals and no match starts in the last 12 bytes.
 *
 * Decompressor: strict. Every read is checked against the end of the input and every write
 * against the output capacity; wide (8/16-byte) copies are used only when the bounds leave room
 * for them. Errors are negative return codes, never traps or out-of-bounds accesses.
 */
#include "xk.h"

#define MINMATCH 4u
#define LASTLITERALS 5u
#define MFLIMIT 12u
#define MAX_DISTANCE 65535u
#define HBITS 14
#define SKIP_SHIFT 6

#define LZ4_ERR_TRUNCATED (-1)
#define LZ4_ERR_OFFSET (-2)
#define LZ4_ERR_OVERFLOW (-3)
#define LZ4_ERR_CAPACITY (-4)

static u32 htab[1u << HBITS];

/* Hash of the 5 bytes at p (reads 8; callers stay >= 8 bytes before the end). Hashing 5
 * rather than 4 bytes finds longer matches on text (measured: ~20% smaller output). */
XK_INLINE u32 hash5(const u8 *p) {
    return (u32)(((ld64(p) << 24) * 889523592379ull) >> (64 - HBITS));
}

/* Worst-case compressed size of n bytes (all literals). */
u32 XK_EXPORT(xk_lz4_bound)(u32 n) { return n + n / 255 + 16; }

XK_INLINE u8 *put_length(u8 *op, u32 rest) {
    while (rest >= 255) { *op++ = 255; rest -= 255; }
    *op++ = (u8)rest;
    return op;
}

XK_INLINE u32 common_length(const u8 *a, const u8 *b, const u8 *limit) {
    const u8 *start = a;
    while (a + 8 <= limit) {
        u64 x = ld64(a) ^ ld64(b);
        if (x) return (u32)(a - start) + (u32)(__builtin_ctzll(x) >> 3);
        a += 8; b += 8;
    }
    while (a < limit && *a == *b) { a++; b++; }
    return (u32)(a - start);
}

/* Emit one sequence: literals [anchor, anchor+lit), then (if mlen) a match. */
XK_INLINE u8 *put_sequence(u8 *op, const u8 *lits, u32 lit, u32 offset, u32 mlen) {
    u8 *token = op++;
    u32 ml = mlen ? mlen - MINMATCH : 0;
    *token = (u8)(((lit >= 15 ? 15 : lit) << 4) | (ml >= 15 ? 15 : ml));
    if (lit >= 15) op = put_length(op, lit - 15);
    xk_memcpy(op, lits, lit);
    op += lit;
    if (mlen) {
        st16(op, (u16)offset);
        op += 2;
        if (ml >= 15) op = put_length(op, ml - 15);
    }
    return op;
}

/* Compress src[0..n) into dst (capacity cap >= xk_lz4_bound(n)). Returns the compressed size or
 * LZ4_ERR_CAPACITY. */
i32 XK_EXPORT(xk_lz4_compress)(const u8 *src, u32 n, u8 *dst, u32 cap) {
    if (cap < xk_lz4_bound(n)) return LZ4_ERR_CAPACITY;
    u8 *op = dst;
    u32 anchor = 0;
    if (n >= MFLIMIT + 1) {
        xk_memset(htab, 0, sizeof htab);
        const u32 mflimit = n - MFLIMIT;        /* last position where a match may start */
        const u8 *matchlimit = src + n - LASTLITERALS; /* matches end at or before this */
        u32 ip = 1;
        u32 misses = 1u << SKIP_SHIFT; /* step = misses >> SKIP_SHIFT: 1 for the first 64 */
        htab[hash5(src)] = 0;
        while (ip <= mflimit) {
            u32 seq = ld32(src + ip);
            u32 hv = hash5(src + ip);
            u32 cand = htab[hv];
            htab[hv] = ip;
            if (cand >= ip || ip - cand > MAX_DISTANCE || ld32(src + cand) != seq) {
                ip += misses++ >> SKIP_SHIFT;
                continue;
            }
            misses = 1u << SKIP_SHIFT;
            /* Extend backwards into the pending literals, then forwards. */
            while (ip > anchor && cand > 0 && src[ip - 1] == src[cand - 1]) { ip--; cand--; }
            u32 mlen = MINMATCH + common_length(src + ip + MINMATCH, src + cand + MINMATCH,
                                                matchlimit);
            op = put_sequence(op, src + anchor, ip - anchor, ip - cand, mlen);
            ip += mlen;
            anchor = ip;
            if (ip <= mflimit) htab[hash5(src + ip - 2)] = ip - 2;
        }
    }
    op = put_sequence(op, src + anchor, n - anchor, 0, 0);
    return (i32)(op - dst);
}

/* Read an LZ4 length continuation (bytes while 255). Returns 0 on truncation. */
XK_INLINE int get_length(const u8 **ipp, const u8 *iend, u32 *len) {
    const u8 *ip = *ipp;
    u32 v = *len;
    for (;;) {
        if (ip >= iend) return 0;
        u32 b = *ip++;
        v += b;
        if (b != 255) break;
        if (v > (1u << 30)) return 0; /* longer than any input we accept; also stops u32 wrap */
    }
    *ipp = ip;
    *len = v;
    return 1;
}

/* Decompress src[0..n) into dst[0..cap). Returns the decompressed size, or
 * LZ4_ERR_TRUNCATED / LZ4_ERR_OFFSET / LZ4_ERR_OVERFLOW. */
i32 XK_EXPORT(xk_lz4_decompress)(const u8 *src, u32 n, u8 *dst, u32 cap) {
    return xk_lz4_decode_after(src, n, dst, dst, cap);
}

/* The decompressor proper: as xk_lz4_decompress, except that matches may reach back to
 * `lo` (<= dst): the output of earlier linked blocks of an LZ4 frame, already in place. */
i32 xk_lz4_decode_after(const u8 *src, u32 n, const u8 *lo, u8 *dst, u32 cap) {
    const u8 *ip = src, *const iend = src + n;
    u8 *op = dst, *const oend = dst + cap;
    for (;;) {
        if (ip >= iend) return LZ4_ERR_TRUNCATED;
        u32 token = *ip++;
        u32 lit = token >> 4;
        if (lit < 15 && iend - ip >= 16 && oend - op >= 16) {
            /* Short literal run with room for a 16-byte copy on both sides. */
            xk_memcpy(op, ip, 16);
        } else {
            if (lit == 15 && !get_length(&ip, iend, &lit)) return LZ4_ERR_TRUNCATED;
            if (lit > (u32)(iend - ip)) return LZ4_ERR_TRUNCATED;
            if (lit > (u32)(oend - op)) return LZ4_ERR_OVERFLOW;
            xk_memcpy(op, ip, lit);
        }
        op += lit;
        ip += lit;
        if (ip == iend) return (i32)(op - dst); /* the last sequence has literals only */
        if (iend - ip < 2) return LZ4_ERR_TRUNCATED;
        u32 offset = ld16(ip);
        ip += 2;
        if (offset == 0 || offset > (u32)(op - lo)) return LZ4_ERR_OFFSET;
        u32 mlen = token & 15;
        if (mlen == 15 && !get_length(&ip, iend, &mlen)) return LZ4_ERR_TRUNCATED;
        mlen += MINMATCH;
        if (mlen > (u32)(oend - op)) return LZ4_ERR_OVERFLOW;
        const u8 *match = op - offset;
        u8 *mend = op + mlen;
        if (offset >= 16 && (u32)(oend - op) >= mlen + 15) {
            /* Wide copy; may write up to 15 bytes past mend (inside the capacity). Each 16-byte
             * read ends at or before the current write position, so overlap is safe. */
            do { xk_memcpy(op, match, 16); op += 16; match += 16; } while (op < mend);
        } else if (offset >= 8 && (u32)(oend - op) >= mlen + 7) {
            do { xk_memcpy(op, match, 8); op += 8; match += 8; } while (op < mend);
        } else if (offset == 1) {
            xk_memset(op, *match, mlen);
        } else {
            while (op < mend) *op++ = *match++;
        }
        op = mend;
    }
}
