/*
 * The --length-bytes, --length-order, --length-offset and --length-adjust values (see
 * framing.h): parsing each, checking the framing they make as a whole against
 * --max-frame, and naming it on the start line. Never prints: messages go back to the
 * caller, which names the option.
 */
#include "framing.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rw_assert.h"

/* A decimal integer with an optional sign, the whole of text, within [-bound, bound]. */
static int parse_signed(const char *text, int64_t bound, int64_t *out)
{
    const char *p = text;
    if (*p == '+' || *p == '-')
        p++;
    if (*p < '0' || *p > '9')
        return -EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(text, &end, 10);
    if (*end != '\0')
        return -EINVAL;
    if (errno == ERANGE || v > bound || v < -bound)
        return -ERANGE;
    *out = (int64_t)v;
    return 0;
}

int rw__framing_parse_option(struct rw_framing *f, const char *name, const char *value, char *why,
                             size_t why_bytes)
{
    RW_ASSERT(f != NULL && name != NULL && value != NULL);
    int64_t v = 0;
    int rc;
    if (strcmp(name, "--length-bytes") == 0) {
        if (parse_signed(value, 8, &v) < 0 || value[0] == '+' || value[0] == '-' ||
            !(v == 1 || v == 2 || v == 3 || v == 4 || v == 8)) {
            snprintf(why, why_bytes, "must be 1, 2, 3, 4 or 8, not '%s'", value);
            return -EINVAL;
        }
        f->length_bytes = (uint8_t)v;
    } else if (strcmp(name, "--length-order") == 0) {
        if (strcmp(value, "big") == 0) {
            f->order = RW_LENGTH_BIG;
        } else if (strcmp(value, "little") == 0) {
            f->order = RW_LENGTH_LITTLE;
        } else {
            snprintf(why, why_bytes, "must be big or little, not '%s'", value);
            return -EINVAL;
        }
    } else if (strcmp(name, "--length-offset") == 0) {
        rc = value[0] == '+' || value[0] == '-' ? -EINVAL
                                                : parse_signed(value, RW_FRAMING_OFFSET_MAX, &v);
        if (rc < 0) {
            snprintf(why, why_bytes, "must be a whole number of bytes from 0 to %u, not '%s'",
                     RW_FRAMING_OFFSET_MAX, value);
            return -EINVAL;
        }
        f->offset = (uint32_t)v;
    } else if (strcmp(name, "--length-adjust") == 0) {
        rc = parse_signed(value, RW_FRAMING_ADJUST_MAX, &v);
        if (rc < 0) {
            snprintf(why, why_bytes,
                     "must be a whole number from -%" PRId64 " to %" PRId64 ", not '%s'",
                     RW_FRAMING_ADJUST_MAX, RW_FRAMING_ADJUST_MAX, value);
            return -EINVAL;
        }
        f->adjust = v;
    } else {
        RW_ASSERT(!"not a framing option");
    }
    return 0;
}

int rw__framing_validate(const struct rw_framing *f, uint32_t max_bytes, char *err,
                         size_t err_bytes)
{
    RW_ASSERT(f != NULL);
    if (rw_framing_check(f) < 0) {
        /* Each value was checked when parsed: only their combination can be wrong. */
        snprintf(err, err_bytes,
                 "--length-adjust: %" PRId64 " makes every length a %u-byte field can hold "
                 "negative; no frame could be carried",
                 f->adjust, f->length_bytes);
        return -EINVAL;
    }
    if (f->adjust > (int64_t)max_bytes) {
        snprintf(err, err_bytes,
                 "--length-adjust: %" PRId64 " exceeds --max-frame %u: every frame, even one "
                 "whose length field is 0, would be oversize",
                 f->adjust, max_bytes);
        return -EINVAL;
    }
    return 0;
}

const char *rw__framing_describe(const struct rw_framing *f, char *buf, size_t buf_bytes)
{
    snprintf(buf, buf_bytes,
             "length-bytes=%u length-order=%s length-offset=%u length-adjust=%" PRId64,
             f->length_bytes, f->order == RW_LENGTH_BIG ? "big" : "little", f->offset, f->adjust);
    return buf;
}
