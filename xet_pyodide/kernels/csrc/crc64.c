/* CRC-64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5, init and xorout all ones.
 * Slice-by-16: sixteen 256-entry tables (32 KiB, built on first use) fold 16 input bytes per
 * step with independent lookups. Wasm has no carry-less multiply, so this is the fast option.
 */
#include "xk.h"

#define POLY 0x9A6C9329AC4BC9B5ull

static u64 T[16][256];
static int tables_ready;

static void build_tables(void) {
    for (u32 i = 0; i < 256; i++) {
        u64 c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        T[0][i] = c;
    }
    for (u32 t = 1; t < 16; t++)
        for (u32 i = 0; i < 256; i++) T[t][i] = (T[t - 1][i] >> 8) ^ T[0][T[t - 1][i] & 0xff];
    tables_ready = 1;
}

#define B(x, s) (((x) >> (s)) & 0xff)

/* crc_ptr: u64, the CRC so far (0 to start a stream), updated with data[0..len). */
void XK_EXPORT(xk_crc64_nvme)(const u8 *data, u32 len, u8 *crc_ptr) {
    if (!tables_ready) build_tables();
    u64 c = ~ld64(crc_ptr);
    u32 i = 0;
    for (; i + 16 <= len; i += 16) {
        u64 a = c ^ ld64(data + i), b = ld64(data + i + 8);
        c = T[15][B(a, 0)] ^ T[14][B(a, 8)] ^ T[13][B(a, 16)] ^ T[12][B(a, 24)] ^
            T[11][B(a, 32)] ^ T[10][B(a, 40)] ^ T[9][B(a, 48)] ^ T[8][a >> 56] ^
            T[7][B(b, 0)] ^ T[6][B(b, 8)] ^ T[5][B(b, 16)] ^ T[4][B(b, 24)] ^
            T[3][B(b, 32)] ^ T[2][B(b, 40)] ^ T[1][B(b, 48)] ^ T[0][b >> 56];
    }
    for (; i < len; i++) c = T[0][(c ^ data[i]) & 0xff] ^ (c >> 8);
    st64(crc_ptr, ~c);
}
