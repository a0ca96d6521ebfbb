/**
 * tally/codec.h — chunk codecs (none, blosc, zstd, gzip, zlib) that encode and decode into buffers
 * the caller owns, with bounds from the codec (as zstd's ZSTD_compressBound + dst/dstCapacity).
 *
 * Encoding runs in stage encode, decoding in stage decode: the codec functions set the stage
 * themselves, so the libraries' own allocations land there. All functions are thread-safe (blosc
 * through its _ctx calls, zstd and zlib with a context per call or per caller).
 */
#ifndef TALLY_CODEC_H
#define TALLY_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

/** GZIP: the gzip format (numcodecs GZip, Zarr v3 "gzip"); ZLIB: the zlib format (numcodecs Zlib, v2 only). */
enum tly_codec_id { TLY_CODEC_NONE, TLY_CODEC_BLOSC, TLY_CODEC_ZSTD, TLY_CODEC_GZIP, TLY_CODEC_ZLIB };

/** Blosc shuffle modes, as numcodecs numbers them. */
enum { TLY_NOSHUFFLE = 0, TLY_SHUFFLE = 1, TLY_BITSHUFFLE = 2 };

/** A codec and its settings. Defaults (tly_codec_defaults) follow numcodecs. */
struct tly_codec {
    enum tly_codec_id id;
    struct {
        char cname[16];   /**< "lz4" (default), "lz4hc", "blosclz", "zstd", "zlib", "snappy" */
        int clevel;       /**< 0..9, default 5 */
        int shuffle;      /**< TLY_NOSHUFFLE, TLY_SHUFFLE (default), TLY_BITSHUFFLE */
        size_t blocksize; /**< 0 = automatic (default) */
        int typesize;     /**< element size, for shuffle (set from the dtype) */
    } blosc;
    struct {
        int level;    /**< -131072..22, default 3 */
        int checksum; /**< write a content checksum (v3 option), default 0 */
    } zstd;
    struct {
        int level; /**< 0..9 (gzip and zlib), default 1 as numcodecs; -1: zlib's default (6) */
    } gzip;
    /** Not metadata: threads a decode may run inside one chunk (blosc splits the chunk's blocks among
     *  them; zstd, and every encode, ignore it). 0 or 1: the calling thread alone. The engine lends
     *  a chunk the threads that have no chunk of their own. */
    int threads;
};

/** Reset @p c to codec @p id with its defaults (typesize 1). */
void tly_codec_defaults(struct tly_codec *c, enum tly_codec_id id);

/** "none", "blosc", "zstd", "gzip" or "zlib". */
const char *tly_codec_name(enum tly_codec_id id);

/**
 * Parse a command-line codec spec: "none", "blosc", "blosc:cname=lz4,clevel=5,shuffle=1,blocksize=0",
 * "zstd", "zstd:level=3,checksum=0", "gzip", "gzip:level=5", "zlib:level=5". Unnamed settings keep
 * their defaults; shuffle also takes the Zarr v3 names (noshuffle, shuffle, bitshuffle); typesize is
 * not a key (it comes from the dtype). Returns 0, or TLY_EUSAGE naming the bad key or value (and
 * @p out is left as it was).
 */
int tly_codec_parse(const char *spec, struct tly_codec *out);

/** Most bytes tly_codec_encode() can produce from @p n input bytes; SIZE_MAX when the codec cannot take @p n. */
size_t tly_codec_bound(const struct tly_codec *c, size_t n);

/**
 * Encode @p n bytes at @p src into @p dst (capacity @p cap >= tly_codec_bound(c, n)); the encoded
 * size goes to @p out_n. Returns 0, TLY_EUSAGE for invalid settings (the message names them), or
 * TLY_ECODEC with the library's message (also when the output does not fit in @p cap). For zstd the
 * frame carries its content size (numcodecs 0.11 needs it); gzip writes one member with zlib's
 * default header. TLY_CODEC_NONE copies through the ledger.
 */
int tly_codec_encode(const struct tly_codec *c, void *dst, size_t cap, const void *src, size_t n, size_t *out_n);

/**
 * Decode @p n encoded bytes at @p src into @p dst, which must receive exactly @p dst_n bytes.
 * Returns 0, or TLY_ECODEC when the input is corrupt, truncated, followed by other bytes, or decodes
 * to another size (the message says which: "zstd: frame content size 100 != expected 400", "blosc:
 * header corrupt", "gzip: stream truncated", ...).
 */
int tly_codec_decode(const struct tly_codec *c, void *dst, size_t dst_n, const void *src, size_t n);

/**
 * The decoded size recorded in an encoded chunk's header, when the format has one (zstd frame
 * content size, blosc nbytes). Returns 0 and sets @p out, TLY_ECODEC when the header is corrupt,
 * TLY_EUNSUPPORTED when the chunk records none (codec none; a zstd frame written without it; zlib;
 * gzip, whose ISIZE trailer is the size mod 2^32 and sits at the end of the last member).
 */
int tly_codec_decoded_size(const struct tly_codec *c, const void *src, size_t n, uint64_t *out);

/**
 * The bytes the codec's library allocates for itself (contexts, its own buffers) to encode, or to
 * decode, one chunk of @p n bytes: what a memory budget must count beside the chunk's buffers.
 * zstd: the streaming context for the level and size (encode); the decoder context, plus its
 * window when @p windowed (a chunk decoded through a window rather than straight into the output:
 * frames with windows up to 8 MiB, which levels up to 19 write). blosc: its per-call temporaries.
 * gzip and zlib: deflate's state and buffers (encode), inflate's state and 32 KiB window (decode).
 * none: 0. In allocated bytes: the estimates plus jemalloc's size-class rounding.
 */
size_t tly_codec_workspace(const struct tly_codec *c, size_t n, bool decode, bool windowed);

/** Where streaming encode sends each block of output as it is produced; returns 0 or an error. */
typedef int (*tly_sink_fn)(void *arg, const void *data, size_t n);

/**
 * zstd only: compress the concatenation of @p niov pieces (read in place: no gather) whose total is
 * @p total bytes, passing output to @p sink in blocks of at most @p out_cap bytes from @p out (a
 * buffer the caller owns, ideally ZSTD_CStreamOutSize()): a full buffer each time it fills, and what
 * is left at the end. The frame records @p total as its content size. Compression runs in stage
 * encode; @p sink runs in the caller's stage (it does the caller's work, e.g. a put). Returns 0,
 * TLY_EUSAGE when the pieces do not add up to @p total (checked before any output), TLY_ECODEC, or
 * the sink's (negative) error.
 */
int tly_zstd_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                           size_t out_cap, tly_sink_fn sink, void *arg);

/**
 * A zstd frame decoded as its bytes arrive (pushed: from file blocks, or from an HTTP body as it
 * lands), so the encoded chunk is never held whole. Output goes either straight into one
 * contiguous destination (no window buffer: zstd writes there directly), or in blocks of at most
 * out_cap bytes through a sink (for a chunk that lies strided in the output).
 */
struct tly_zstd_dstream;

/**
 * Start decoding a frame of exactly @p dst_n decoded bytes. Give either @p dst (contiguous
 * destination) or @p sink with @p out / @p out_cap (a buffer the caller owns, ideally
 * ZSTD_DStreamOutSize()). Returns 0 and sets @p out_ds, or an error. Runs in stage decode.
 */
int tly_zstd_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_zstd_dstream **out_ds);

/** Feed the next @p n encoded bytes. TLY_ECODEC when they are not the frame expected. */
int tly_zstd_dstream_feed(struct tly_zstd_dstream *ds, const void *in, size_t n);

/**
 * Finish: 0 when exactly one whole frame of dst_n bytes was decoded, else TLY_ECODEC ("truncated",
 * "trailing bytes", "content size ..."). Frees @p ds (NULL is fine) either way.
 */
int tly_zstd_dstream_close(struct tly_zstd_dstream *ds);

/**
 * Free @p ds (NULL is fine) without a verdict, after a feed (or the reading that fed it) failed: the
 * thread's error message keeps that failure's reason instead of close()'s "truncated".
 */
void tly_zstd_dstream_abort(struct tly_zstd_dstream *ds);

/**
 * The output block gzip and zlib stream through (tly_gzip_encode_stream's @p out, a windowed
 * tly_gzip_dstream's @p out): as ZSTD_CStreamOutSize() is zstd's, about one deflate block's worth.
 */
#define TLY_GZIP_STREAM_BLOCK ((size_t)128 << 10)

/**
 * gzip or zlib (by @p c->id, TLY_CODEC_GZIP or TLY_CODEC_ZLIB), as tly_zstd_encode_stream: deflate
 * the concatenation of @p niov pieces (read in place) whose total is @p total bytes, passing output
 * to @p sink in blocks of at most @p out_cap bytes from @p out (ideally TLY_GZIP_STREAM_BLOCK). One
 * gzip member (zlib's default header: no name, mtime 0) or one zlib stream. Deflate runs in stage
 * encode, @p sink in the caller's stage. Returns 0, TLY_EUSAGE (settings, or pieces that do not add
 * up to @p total: checked before any output), TLY_ECODEC, or the sink's (negative) error.
 */
int tly_gzip_encode_stream(const struct tly_codec *c, const struct iovec *iov, int niov, uint64_t total, void *out,
                           size_t out_cap, tly_sink_fn sink, void *arg);

/**
 * A gzip or zlib stream inflated as its bytes arrive, as tly_zstd_dstream: straight into one
 * contiguous destination (zlib writes there directly; it keeps only its 32 KiB window), or in
 * blocks of at most out_cap bytes through a sink. gzip: any valid header (name, comment, extra
 * field, header CRC) and members one after another (as Python's gzip module, and so numcodecs,
 * reads them); zlib: one stream, no preset dictionary.
 */
struct tly_gzip_dstream;

/**
 * Start inflating a stream of exactly @p dst_n decoded bytes: @p dst (contiguous destination), or
 * @p sink with @p out / @p out_cap (a buffer the caller owns). Returns 0 and sets @p out_ds, or an
 * error. Runs in stage decode.
 */
int tly_gzip_dstream_open(const struct tly_codec *c, void *dst, size_t dst_n, tly_sink_fn sink, void *arg, void *out,
                          size_t out_cap, struct tly_gzip_dstream **out_ds);

/** Feed the next @p n encoded bytes. TLY_ECODEC ("gzip: corrupt stream (...)", "... more than the N
 *  bytes expected", "zlib: trailing bytes after the stream") when they are not the stream expected. */
int tly_gzip_dstream_feed(struct tly_gzip_dstream *ds, const void *in, size_t n);

/**
 * Finish: 0 when whole streams (members) of dst_n bytes in all were decoded, else TLY_ECODEC
 * ("truncated", "decoded to N bytes, expected M"). Frees @p ds (NULL is fine) either way.
 */
int tly_gzip_dstream_close(struct tly_gzip_dstream *ds);

/** Free @p ds (NULL is fine) without a verdict, keeping the failure's message (as tly_zstd_dstream_abort). */
void tly_gzip_dstream_abort(struct tly_gzip_dstream *ds);

/**
 * CRC-32C (Castagnoli), as Zarr v3's crc32c codec stores it: @p crc is the value so far (0 to
 * start), so that tly_crc32c(tly_crc32c(0, a, n), b, m) is the CRC of a then b. tly_crc32c(0,
 * "123456789", 9) == 0xE3069283.
 */
uint32_t tly_crc32c(uint32_t crc, const void *data, size_t n);

/* ---- blosc frames read block by block (src/codec/blosc_frame.c) ---- */

/** Bytes of a c-blosc 1.x frame header. */
#define TLY_BLOSC_HEADER 16

/** Bytes a reader leaves free before each block it holds: tly_blosc_block_frame() writes a frame
 *  header of one block there, so that the block decodes where it lies (no copy). */
#define TLY_BLOSC_BLOCK_PAD 20

/** A c-blosc 1.x frame's layout, from its header. */
struct tly_blosc_frame {
    uint64_t nbytes;    /**< decoded bytes */
    uint64_t cbytes;    /**< bytes of the whole frame (the chunk) */
    uint64_t blocksize; /**< decoded bytes per block (the last may be shorter) */
    uint64_t nblocks;   /**< blocks; 0 when memcpyed or empty */
    bool memcpyed;      /**< the decoded bytes follow the header as they are: no table, no blocks */
    uint8_t header[TLY_BLOSC_HEADER];
};

/**
 * Read the header (the first 16 bytes) of a frame of @p size bytes that must decode to @p dst_n
 * bytes into @p f. Returns 0, or TLY_ECODEC when the header is corrupt or does not match the chunk
 * ("blosc: chunk holds 100 bytes, expected 400", "blosc: header corrupt (...)").
 */
int tly_blosc_frame_open(const void *header, uint64_t size, uint64_t dst_n, struct tly_blosc_frame *f);

/** Bytes of the offset table that follows the header (4 per block). */
uint64_t tly_blosc_frame_table_bytes(const struct tly_blosc_frame *f);

/** Decoded bytes of block @p j. */
uint64_t tly_blosc_block_size(const struct tly_blosc_frame *f, uint64_t j);

/** The most encoded bytes a valid block of @p bsize decoded bytes can take. */
uint64_t tly_blosc_max_extent(uint64_t bsize);

/**
 * Check the offset table @p table (tly_blosc_frame_table_bytes() bytes, as stored) and lay the
 * blocks out: block j's encoded bytes are @p extent[j] bytes at @p start[j] of the frame (arrays of
 * nblocks; @p scratch has room for nblocks uint64_t). Blocks may lie in any order (c-blosc's threaded
 * compressor writes them as its threads finish); the table is valid when every block starts after
 * it and inside the frame, no two at the same place, and each spans no more than a block of its size
 * can. Returns 0, or TLY_ECODEC naming the block.
 */
int tly_blosc_frame_blocks(const struct tly_blosc_frame *f, const void *table, uint32_t *start, uint32_t *extent,
                           uint64_t *scratch);

/**
 * Make block @p j, whose @p extent encoded bytes lie at @p at + TLY_BLOSC_BLOCK_PAD, a frame of its
 * own (writing TLY_BLOSC_BLOCK_PAD bytes at @p at): tly_codec_decode() of the frame at @p at, of the
 * length returned, gives the block's tly_blosc_block_size() bytes. A block that claims more bytes
 * than @p extent is corrupt, and that decode says so.
 */
size_t tly_blosc_block_frame(const struct tly_blosc_frame *f, uint64_t j, void *at, size_t extent);

/* ---- blosc frames written block by block (src/codec/blosc_write.c) ---- */

/** How a chunk becomes a c-blosc 1.x frame block by block: what blosc_compress_ctx() would choose. */
struct tly_blosc_plan {
    uint64_t n;         /**< decoded bytes */
    uint64_t blocksize; /**< the frame's block size */
    uint64_t nblocks;   /**< 0 when memcpyed */
    size_t last_force;  /**< the forced block size that compresses the last, shorter block (internal) */
    bool memcpyed;      /**< the frame is the header and the bytes as they are (clevel 0, under 128 bytes) */
    uint8_t header[TLY_BLOSC_HEADER]; /**< c-blosc's header for these settings (sizes set by the calls below) */
};

/**
 * Plan chunks of @p n bytes with @p c's settings (once per array: it compresses a probe of zeros).
 * Returns 0, TLY_EUSAGE for bad settings, or TLY_EUNSUPPORTED when c-blosc's choices cannot be
 * reproduced block by block (the chunk is then compressed whole). Runs in stage encode.
 */
int tly_blosc_plan(const struct tly_codec *c, uint64_t n, struct tly_blosc_plan *p);

/** Bytes of the output buffer tly_blosc_encode_block() needs. */
size_t tly_blosc_block_cap(const struct tly_blosc_plan *p);

/**
 * Compress block @p j: @p src holds its bytes, and for the last block when it is shorter, the full
 * block before it and then it (src points at the one before: c-blosc compresses a short last block as
 * the end of a frame). Output goes to @p out (tly_blosc_block_cap() bytes); the block's encoded bytes
 * are @p *len bytes at @p *at. Returns 0 or TLY_ECODEC. Runs in stage encode.
 */
int tly_blosc_encode_block(const struct tly_codec *c, const struct tly_blosc_plan *p, uint64_t j, const void *src,
                           void *out, const void **at, size_t *len);

/**
 * The frame's header and offset table (TLY_BLOSC_HEADER + 4 per block bytes, into @p head) for blocks
 * of @p sizes encoded bytes. False when the frame would be longer than the chunk and its header:
 * c-blosc stores such a chunk memcpyed instead (tly_blosc_memcpyed_head).
 */
bool tly_blosc_frame_head(const struct tly_blosc_plan *p, const uint32_t *sizes, void *head);

/** The 16-byte header of the chunk's memcpyed frame (the chunk's bytes follow it as they are). */
void tly_blosc_memcpyed_head(const struct tly_blosc_plan *p, void *head);

#ifdef __cplusplus
}
#endif

#endif
