/* libFuzzer harness for the record kernels (xk_decode_records, xk_encode_record), built
 * natively with AddressSanitizer and UBSan by scripts/fuzz_records.sh (the test suite runs it
 * for 20 s over the regression corpus in tests/fuzz/corpus; see tests/fuzz/README.md).
 *
 * Input: 4 bytes of parameters (record limit, output capacity, hash or not, scheme), then the
 * bytes handed to the decoder. Every buffer is exactly as large as the kernel is told, so any
 * read or write past what it was given is an ASan report. The same bytes (when they fit in a
 * chunk) are also encoded as a record and decoded back, which must give them back exactly.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef unsigned char u8;
typedef unsigned int u32;
int xk_decode_records(const u8 *src, u32 n, u32 max_chunks, u8 *dst, u32 cap, u8 *scratch,
                      u32 *info, const u8 *key, u8 *digests);
int xk_encode_record(const u8 *src, u32 n, u32 scheme, u8 *dst, u8 *scratch);
u32 xk_record_bound(u32 n);

#define SCRATCH (128u << 10)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    u32 max_chunks = 1 + data[0] % 8;
    u32 cap = ((u32)data[1] << 10) | data[2];
    const u8 *key_bytes = (const u8 *)"0123456789abcdef0123456789abcdef";
    u32 n = (u32)size - 4;
    u8 *src = malloc(n ? n : 1), *dst = malloc(cap ? cap : 1), *scratch = malloc(SCRATCH);
    u32 *info = malloc(4 * (3 + max_chunks));
    u8 *digests = malloc(32 * max_chunks);
    memcpy(src, data + 4, n);
    xk_decode_records(src, n, max_chunks, dst, cap, scratch, info, data[3] & 1 ? key_bytes : 0,
                      digests);
    if (n <= SCRATCH) {
        u8 *record = malloc(xk_record_bound(n)), *back = malloc(n ? n : 1);
        int len = xk_encode_record(src, n, data[3] % 3, record, scratch);
        if (len < 8) __builtin_trap();
        int count = xk_decode_records(record, (u32)len, 1, back, n, scratch, info, 0, digests);
        if (count != 1 || info[0] != (u32)len || memcmp(back, src, n) != 0) __builtin_trap();
        free(record);
        free(back);
    }
    free(src);
    free(dst);
    free(scratch);
    free(info);
    free(digests);
    return 0;
}
