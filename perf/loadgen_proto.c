/* loadgen_proto.c - request framing and response decoding for the load generator. */
#include "perf/loadgen_proto.h"

#include <assert.h>

int lg_request_encode(struct kafka_writer *w, int16_t api_key, int16_t version,
                      int32_t correlation_id, const void *msg) {
    int hv = kafka_request_header_version(api_key, version);
    if (hv < 0) return KAFKA_ERR_VERSION;
    size_t size_at = kafka_writer_reserve(w, 4);
    struct kafka_request_header h;
    kafka_request_header_init(&h, (int16_t)hv);
    h.request_api_key = api_key;
    h.request_api_version = version;
    h.correlation_id = correlation_id;
    h.client_id = kafka_str_from_cstr(LG_CLIENT_ID);
    int rc = kafka_request_header_encode(w, (int16_t)hv, &h);
    if (rc == 0) rc = kafka_request_encode(api_key, version, w, msg);
    if (rc == 0 && w->err) rc = w->err;
    if (rc != 0) return rc;
    size_t total = kafka_writer_size(w);
    assert(total >= size_at + 4);
    kafka_writer_patch_int32(w, size_at, (int32_t)(total - size_at - 4));
    return w->err;
}

int lg_response_decode(const uint8_t *frame, size_t len_bytes, int16_t api_key,
                       int16_t version, int32_t *correlation_id, void *msg,
                       struct kafka_arena *arena) {
    int hv = kafka_response_header_version(api_key, version);
    if (hv < 0) return KAFKA_ERR_VERSION;
    struct kafka_reader r;
    kafka_reader_init(&r, frame, len_bytes);
    struct kafka_response_header h;
    int rc = kafka_response_header_decode(&r, (int16_t)hv, &h, NULL);
    if (rc != 0) return rc;
    *correlation_id = h.correlation_id;
    kafka_response_init(api_key, version, msg);
    rc = kafka_response_decode(api_key, version, &r, arena, msg);
    if (rc == 0 && r.err) rc = r.err;
    return rc;
}

int32_t lg_frame_correlation_id(const uint8_t *frame, size_t len_bytes) {
    if (len_bytes < 4) return -1;
    return (int32_t)(((uint32_t)frame[0] << 24) | ((uint32_t)frame[1] << 16) |
                     ((uint32_t)frame[2] << 8) | frame[3]);
}
