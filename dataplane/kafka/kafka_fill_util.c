/* kafka_fill_util.c: deterministic values for the generated test fillers. */
#include "dataplane/kafka/kafka_fill_util.h"

#include <string.h>

static const char *const string_pool[] = {
    "", "a", "topic-1", "consumer-group", "sluice", "\xc3\xa9t\xc3\xa9", "x-y_z.0",
    ("a-rather-longer-string-to-cross-the-one-byte-varint-boundary-of-127-bytes-"
     "a-rather-longer-string-to-cross-the-one-byte-varint-boundary-of-127-bytes"),
};

static const uint8_t bytes_pool[] = {
    0x00, 0x01, 0x02, 0xfe, 0xff, 0x7f, 0x80, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60,
    0x70, 0x81, 0x91, 0xa1, 0xb1, 0xc1, 0xd1, 0xe1, 0xf1, 0x0a, 0x0b, 0x0c, 0x0d,
};

uint32_t kafka_fill_next(uint32_t *seed)
{
    uint32_t x = *seed ? *seed : 0x9e3779b9u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *seed = x;
    return x;
}

void kafka_fill_uuid(struct kafka_uuid *u, uint32_t *seed)
{
    for (size_t i = 0; i < sizeof(u->bytes); i += 4) {
        uint32_t v = kafka_fill_next(seed);
        memcpy(u->bytes + i, &v, 4);
    }
}

struct kafka_str kafka_fill_str(uint32_t *seed, bool nullable)
{
    uint32_t v = kafka_fill_next(seed);
    if (nullable && (v & 3) == 0)
        return (struct kafka_str){ NULL, -1 };
    const char *s = string_pool[(v >> 2) % (sizeof(string_pool) / sizeof(string_pool[0]))];
    return (struct kafka_str){ s, (int32_t)strlen(s) };
}

struct kafka_bytes kafka_fill_bytes(uint32_t *seed, bool nullable)
{
    uint32_t v = kafka_fill_next(seed);
    if (nullable && (v & 3) == 0)
        return (struct kafka_bytes){ NULL, -1 };
    uint32_t off = (v >> 2) % 8;
    uint32_t len = (v >> 8) % (uint32_t)(sizeof(bytes_pool) - off);
    return (struct kafka_bytes){ bytes_pool + off, (int32_t)len };
}

struct kafka_bytes kafka_fill_records(uint32_t *seed, bool nullable)
{
    static uint8_t records[300];
    if (records[1] == 0) {
        for (size_t i = 0; i < sizeof(records); i++)
            records[i] = (uint8_t)(i * 7 + 1);
    }
    uint32_t v = kafka_fill_next(seed);
    if (nullable && (v & 3) == 0)
        return (struct kafka_bytes){ NULL, -1 };
    return (struct kafka_bytes){ records, (int32_t)((v >> 2) % sizeof(records)) };
}

int32_t kafka_fill_count(uint32_t *seed, bool nullable)
{
    uint32_t v = kafka_fill_next(seed);
    if (nullable && (v & 7) == 0)
        return -1;
    return (int32_t)((v >> 3) % 3);
}
