/* xxHash32, from the xxHash specification (used by LZ4 frame header and content checksums). */
#include "xk.h"

#define P1 2654435761u
#define P2 2246822519u
#define P3 3266489917u
#define P4 668265263u
#define P5 374761393u

XK_INLINE u32 round32(u32 acc, u32 lane) { return rotl32(acc + lane * P2, 13) * P1; }

u32 XK_EXPORT(xk_xxh32)(const u8 *p, u32 n, u32 seed) {
    u32 i = 0, h;
    if (n >= 16) {
        u32 v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        for (; i + 16 <= n; i += 16) {
            v1 = round32(v1, ld32(p + i));
            v2 = round32(v2, ld32(p + i + 4));
            v3 = round32(v3, ld32(p + i + 8));
            v4 = round32(v4, ld32(p + i + 12));
        }
        h = rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18);
    } else {
        h = seed + P5;
    }
    h += n;
    for (; i + 4 <= n; i += 4) h = rotl32(h + ld32(p + i) * P3, 17) * P4;
    for (; i < n; i++) h = rotl32(h + p[i] * P5, 11) * P1;
    h ^= h >> 15;
    h *= P2;
    h ^= h >> 13;
    h *= P3;
    h ^= h >> 16;
    return h;
}
