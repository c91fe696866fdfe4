/*
 * Internal framing helpers behind include/ringwire/frame.h: the length check the parser
 * and the reassembler share, and the --length-* option values (parsed, validated against
 * --max-frame, described for the start line), so the CLI's option table stays one line
 * per option.
 */
#ifndef RW_FRAMING_H
#define RW_FRAMING_H

#include <stddef.h>
#include <stdint.h>

#include <ringwire/frame.h>

/*
 * The payload length a complete header announces (header: rw_framing_header_bytes(f)
 * bytes). 0 and *out_len; -EMSGSIZE above max_bytes; -EPROTO below zero.
 */
int rw__framing_length(const struct rw_framing *f, const uint8_t *header, uint32_t max_bytes,
                       uint32_t *out_len);

/*
 * Apply one option to f: name "--length-bytes" (1|2|3|4|8), "--length-order" (big|little),
 * "--length-offset" (0..RW_FRAMING_OFFSET_MAX) or "--length-adjust" (signed, |N| <=
 * RW_FRAMING_ADJUST_MAX). 0, or -EINVAL with why (not naming the option) filled.
 */
int rw__framing_parse_option(struct rw_framing *f, const char *name, const char *value, char *why,
                             size_t why_bytes);

/*
 * The framing as a whole, once every option is in: rw_framing_check, and an adjustment
 * that would make every frame longer than max_bytes. 0, or -EINVAL with err holding the
 * message, the option named first ("--length-adjust: ...").
 */
int rw__framing_validate(const struct rw_framing *f, uint32_t max_bytes, char *err,
                         size_t err_bytes);

/* "length-bytes=4 length-order=big length-offset=0 length-adjust=0", for the start line. */
const char *rw__framing_describe(const struct rw_framing *f, char *buf, size_t buf_bytes);

#endif
