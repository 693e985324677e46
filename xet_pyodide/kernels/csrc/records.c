/* Batch decoding of xorb chunk records (download path): one call decodes every whole record
 * of a fetched block instead of one kernel call (and two copies) per chunk.
 *
 * A record is an 8-byte header -- u32 (version | compressed size << 8), u32 (scheme |
 * uncompressed size << 8), little endian -- and its payload: the chunk itself (scheme 0), an
 * LZ4 frame of it (scheme 1) or an LZ4 frame of its byte-grouped form (scheme 2). The checks
 * are those of the Python reader (xet_pyodide/core/xorb.py, core/lz4frame.py): version 0,
 * sizes within xet-core's limits, raw payloads of the stated size, frames fully validated
 * (descriptor, header checksum, block sizes, optional block/content checksums and content
 * size, skippable frames skipped), and every chunk decoding to exactly its stated size.
 */
#include "xk.h"

#define REC_HEADER 8u
#define MAX_UNCOMPRESSED (128u << 10)
#define MAX_COMPRESSED (256u << 10)

#define FRAME_MAGIC 0x184D2204u
#define SKIPPABLE_MASK 0xFFFFFFF0u
#define SKIPPABLE_MAGIC 0x184D2A50u
#define UNCOMPRESSED_BIT 0x80000000u

/* Error codes (the LZ4 block decoder's -1..-3 pass through unchanged). */
#define REC_ERR_VERSION (-10)
#define REC_ERR_SCHEME (-11)
#define REC_ERR_LIMITS (-12)
#define REC_ERR_RAW_SIZE (-13)
#define REC_ERR_SIZE (-14)
#define FR_ERR_TRUNCATED (-20)
#define FR_ERR_MAGIC (-21)
#define FR_ERR_VERSION (-22)
#define FR_ERR_RESERVED (-23)
#define FR_ERR_DICT (-24)
#define FR_ERR_BLOCK_CODE (-25)
#define FR_ERR_CONTENT_SIZE_BIG (-26)
#define FR_ERR_HEADER_CHECKSUM (-27)
#define FR_ERR_BLOCK_SIZE (-28)
#define FR_ERR_BLOCK_CHECKSUM (-29)
#define FR_ERR_OVERFLOW (-30)
#define FR_ERR_CONTENT_CHECKSUM (-31)
#define FR_ERR_CONTENT_SIZE (-32)
#define FR_ERR_NO_FRAME (-33)

/* One frame after its magic number: *ipp..iend holds the rest of the payload; the frame's
 * output goes to dst[0..cap). Returns the bytes produced (and advances *ipp) or an error. */
static i32 decode_frame(const u8 **ipp, const u8 *iend, u8 *dst, u32 cap) {
    const u8 *ip = *ipp;
    const u8 *descriptor = ip;
    if (iend - ip < 2) return FR_ERR_TRUNCATED;
    u32 flg = ip[0], bd = ip[1];
    ip += 2;
    if ((flg & 0xC0u) != 0x40u) return FR_ERR_VERSION;
    if ((flg & 0x02u) || (bd & 0x8Fu)) return FR_ERR_RESERVED;
    if (flg & 0x01u) return FR_ERR_DICT;
    u32 code = (bd >> 4) & 7u;
    if (code < 4) return FR_ERR_BLOCK_CODE;
    u32 block_max = 1u << (8 + 2 * code); /* 4: 64 KiB, 5: 256 KiB, 6: 1 MiB, 7: 4 MiB */
    int has_size = (flg & 0x08u) != 0;
    u64 content_size = 0;
    if (has_size) {
        if (iend - ip < 8) return FR_ERR_TRUNCATED;
        content_size = ld64(ip);
        ip += 8;
        if (content_size > cap) return FR_ERR_CONTENT_SIZE_BIG;
    }
    if (iend - ip < 1) return FR_ERR_TRUNCATED;
    if (*ip != ((xk_xxh32(descriptor, (u32)(ip - descriptor), 0) >> 8) & 0xFFu))
        return FR_ERR_HEADER_CHECKSUM;
    ip++;
    const int linked = !(flg & 0x20u), block_sums = (flg & 0x10u) != 0;
    u32 produced = 0;
    for (;;) {
        if (iend - ip < 4) return FR_ERR_TRUNCATED;
        u32 word = ld32(ip);
        ip += 4;
        if (word == 0) break;
        u32 size = word & ~UNCOMPRESSED_BIT;
        if (size > block_max) return FR_ERR_BLOCK_SIZE;
        if (size > (u32)(iend - ip)) return FR_ERR_TRUNCATED;
        const u8 *payload = ip;
        ip += size;
        if (block_sums) {
            if (iend - ip < 4) return FR_ERR_TRUNCATED;
            if (ld32(ip) != xk_xxh32(payload, size, 0)) return FR_ERR_BLOCK_CHECKSUM;
            ip += 4;
        }
        u32 limit = cap - produced;
        if (limit > block_max) limit = block_max;
        i32 got;
        if (word & UNCOMPRESSED_BIT) {
            if (size > limit) return FR_ERR_OVERFLOW;
            xk_memcpy(dst + produced, payload, size);
            got = (i32)size;
        } else {
            /* Linked blocks may copy from the frame's earlier output, which is right before
             * this block's in dst (an offset is at most 65535, the format's window). */
            got = xk_lz4_decode_after(payload, size, linked ? dst : dst + produced,
                                      dst + produced, limit);
            if (got < 0) return got;
        }
        produced += (u32)got;
    }
    if (flg & 0x04u) {
        if (iend - ip < 4) return FR_ERR_TRUNCATED;
        if (ld32(ip) != xk_xxh32(dst, produced, 0)) return FR_ERR_CONTENT_CHECKSUM;
        ip += 4;
    }
    if (has_size && content_size != produced) return FR_ERR_CONTENT_SIZE;
    *ipp = ip;
    return (i32)produced;
}

/* A payload of one or more LZ4 frames (skippable frames ignored) into dst[0..cap). */
static i32 decode_frames(const u8 *src, u32 n, u8 *dst, u32 cap) {
    const u8 *ip = src, *const iend = src + n;
    u32 produced = 0, frames = 0;
    while (ip < iend) {
        if (iend - ip < 4) return FR_ERR_TRUNCATED;
        u32 magic = ld32(ip);
        ip += 4;
        if ((magic & SKIPPABLE_MASK) == SKIPPABLE_MAGIC) {
            if (iend - ip < 4) return FR_ERR_TRUNCATED;
            u32 skip = ld32(ip);
            ip += 4;
            if (skip > (u32)(iend - ip)) return FR_ERR_TRUNCATED;
            ip += skip;
            continue;
        }
        if (magic != FRAME_MAGIC) return FR_ERR_MAGIC;
        i32 got = decode_frame(&ip, iend, dst + produced, cap - produced);
        if (got < 0) return got;
        produced += (u32)got;
        frames++;
    }
    return frames ? (i32)produced : FR_ERR_NO_FRAME;
}

/* Decode the whole records at the start of src[0..n), at most max_chunks of them, into
 * dst[0..cap), back to back. scratch: MAX_UNCOMPRESSED bytes for byte-grouped chunks.
 * info (u32 array, 3 + max_chunks entries) receives: [0] bytes of src consumed, [1] bytes
 * written to dst, [2] the decoded size of the next record when the call stopped because it did
 * not fit in dst (else 0), [3 + k] the decoded size of chunk k.
 * Decoding stops at max_chunks, at a record not wholly inside src, or at one too big for the
 * rest of dst. If key is not 0, the decoded chunks are then hashed (keyed BLAKE3, 32-byte key
 * at key) into digests (32 bytes per chunk).
 * Returns the number of chunks decoded, or an error code; then info[0] is the index of the
 * offending record, info[1] its offset in src and, for REC_ERR_SIZE, info[2] the size it
 * decoded to. */
i32 XK_EXPORT(xk_decode_records)(const u8 *src, u32 n, u32 max_chunks, u8 *dst, u32 cap,
                                 u8 *scratch, u32 *info, const u8 *key, u8 *digests) {
    u32 pos = 0, out = 0, count = 0;
    i32 err = 0;
    info[2] = 0;
    while (count < max_chunks && n - pos >= REC_HEADER) {
        u32 w0 = ld32(src + pos), w1 = ld32(src + pos + 4);
        u32 version = w0 & 0xFFu, packed = w0 >> 8, scheme = w1 & 0xFFu, size = w1 >> 8;
        if (version != 0) { err = REC_ERR_VERSION; break; }
        if (scheme > 2) { err = REC_ERR_SCHEME; break; }
        if (size > MAX_UNCOMPRESSED || packed > MAX_COMPRESSED) { err = REC_ERR_LIMITS; break; }
        if (scheme == 0 && packed != size) { err = REC_ERR_RAW_SIZE; break; }
        if (packed > n - pos - REC_HEADER) break; /* the rest arrives with the next block */
        if (size > cap - out) { info[2] = size; break; }
        const u8 *payload = src + pos + REC_HEADER;
        if (scheme == 0) {
            xk_memcpy(dst + out, payload, size);
        } else {
            u8 *target = scheme == 2 ? scratch : dst + out;
            i32 got = decode_frames(payload, packed, target, size);
            if (got < 0) { err = got; break; }
            if ((u32)got != size) { err = REC_ERR_SIZE; info[2] = (u32)got; break; }
            if (scheme == 2) xk_bg4_regroup(scratch, size, dst + out);
        }
        info[3 + count] = size;
        out += size;
        pos += REC_HEADER + packed;
        count++;
    }
    if (err) {
        info[0] = count;
        info[1] = pos;
        return err;
    }
    info[0] = pos;
    info[1] = out;
    if (key) xk_blake3_keyed_many(dst, info + 3, count, key, digests);
    return (i32)count;
}

/* ---------------------------------------------------------------------------- encoding */

/* Record of one chunk src[0..n) (n <= MAX_UNCOMPRESSED) with scheme 0, 1 or 2, as hf_xet
 * writes it: scheme 1/2 payloads are one LZ4 frame (FLG 0x60: version 1, independent blocks,
 * no checksums, no content size; BD: the smallest of 64 KiB / 256 KiB / 1 MiB / 4 MiB block
 * maximums that holds the input), each block stored raw when compressing does not shrink it;
 * the chunk is stored raw (scheme 0) unless the payload is strictly smaller than it.
 * dst needs xk_record_bound(n) bytes; scratch, n bytes (the byte-grouped chunk).
 * Returns the record's length, or REC_ERR_SCHEME / REC_ERR_LIMITS. */
u32 XK_EXPORT(xk_record_bound)(u32 n) { return REC_HEADER + 15 + 8 + n + n / 255 + 16; }

/* The record of src[0..n) under scheme (checked by the callers) at dst. */
static i32 encode_one(const u8 *src, u32 n, u32 scheme, u8 *dst, u8 *scratch) {
    u8 *payload = dst + REC_HEADER;
    u32 size = n;
    if (scheme != 0) {
        const u8 *input = src;
        if (scheme == 2) {
            xk_bg4_split(src, n, scratch);
            input = scratch;
        }
        u32 code = 4, block_max = 64u << 10;
        while (code < 7 && n > block_max) { code++; block_max <<= 2; }
        u8 *op = payload;
        st32(op, FRAME_MAGIC);
        op[4] = 0x60;
        op[5] = (u8)(code << 4);
        op[6] = (u8)((xk_xxh32(op + 4, 2, 0) >> 8) & 0xFFu);
        op += 7;
        for (u32 pos = 0; pos < n; pos += block_max) {
            u32 len = n - pos < block_max ? n - pos : block_max;
            i32 packed = xk_lz4_compress(input + pos, len, op + 4, xk_lz4_bound(len));
            if (packed > 0 && (u32)packed < len) {
                st32(op, (u32)packed);
                op += 4 + packed;
            } else {
                st32(op, len | UNCOMPRESSED_BIT);
                xk_memcpy(op + 4, input + pos, len);
                op += 4 + len;
            }
        }
        st32(op, 0);
        op += 4;
        size = (u32)(op - payload);
        if (size >= n) scheme = 0;
    }
    if (scheme == 0) {
        xk_memcpy(payload, src, n);
        size = n;
    }
    st32(dst, size << 8);
    st32(dst + 4, (n << 8) | scheme);
    return (i32)(REC_HEADER + size);
}

i32 XK_EXPORT(xk_encode_record)(const u8 *src, u32 n, u32 scheme, u8 *dst, u8 *scratch) {
    if (scheme > 2) return REC_ERR_SCHEME;
    if (n > MAX_UNCOMPRESSED) return REC_ERR_LIMITS;
    return encode_one(src, n, scheme, dst, scratch);
}

/* The records of count chunks stored back to back at src (sizes lens[k], schemes schemes[k]:
 * one byte each), written back to back at dst: the same bytes as count xk_encode_record calls
 * (upload packing: one call per run of new chunks instead of one per chunk). dst needs the sum
 * of xk_record_bound(lens[k]); scratch, MAX_UNCOMPRESSED bytes. If crc_ptr is not 0, the u64
 * there (a CRC-64/NVME so far, 0 to start) is continued over the records written, record by
 * record while each is still in cache. Returns the bytes written, or REC_ERR_SCHEME /
 * REC_ERR_LIMITS for a bad scheme or size (nothing is written then: all are checked first). */
i32 XK_EXPORT(xk_encode_records)(const u8 *src, u32 count, const u32 *lens, const u8 *schemes,
                                 u8 *dst, u8 *scratch, u8 *crc_ptr) {
    for (u32 k = 0; k < count; k++) {
        if (schemes[k] > 2) return REC_ERR_SCHEME;
        if (lens[k] > MAX_UNCOMPRESSED) return REC_ERR_LIMITS;
    }
    u32 out = 0;
    for (u32 k = 0; k < count; k++) {
        u32 n = lens[k];
        i32 size = encode_one(src, n, schemes[k], dst + out, scratch);
        if (crc_ptr) xk_crc64_nvme(dst + out, (u32)size, crc_ptr);
        src += n;
        out += (u32)size;
    }
    return (i32)out;
}
