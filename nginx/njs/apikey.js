// The per-key rate-limit key of an API request (js_set $api_key_id): the SHA-256 of the API key alone.
//
// Every spelling of one key must land in the same nginx bucket, or a client multiplies its budget by
// writing the header differently ("bearer KEY", "Bearer  KEY", "Bearer KEY\x0b", "Bearer KEY\xa0" ...).
// So: whitespace around the value, between scheme and token, and after the token is dropped (ASCII, the
// Latin-1 bytes 0x85/0xa0, and Unicode's whitespace and zero-width characters as UTF-8); the scheme
// "Bearer" is matched without regard to case; only the token is hashed. A value without a Bearer scheme is
// hashed whole (trimmed), so a bare "KEY" shares the bucket too. No header, or an empty token, gives ""
// (nginx does not count an empty key; the per-address zone still counts the request).
//
// The header is read as raw bytes (r.rawVariables), never decoded: bytes that are not UTF-8 are neither
// lost nor merged by a decoder. The scan is linear (no backtracking regex on client input). The raw key
// never becomes a key in nginx's shared memory. Which spellings the gate accepts is the gate's business
// (only "Bearer <token>"); nginx only makes sure that no spelling gets a budget of its own.
var crypto = require('crypto');

// Single whitespace bytes: \t \n \v \f \r, the separators 0x1c-0x1f (Python's str.isspace), space,
// and 0x85 (NEL) / 0xa0 (NBSP) as Latin-1 bytes, which is how an HTTP header value is usually decoded.
function isSpaceByte(c) {
    return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c === 0x85 || c === 0xa0;
}

// Length (2 or 3) of a UTF-8 encoded whitespace or zero-width character starting at b[i], else 0:
// U+0085, U+00A0, U+1680, U+180E, U+2000-U+200D, U+2028, U+2029, U+202F, U+205F, U+2060, U+3000, U+FEFF.
function utf8SpaceAt(b, i, end) {
    var c0 = b[i];
    if (c0 === 0xc2 && i + 1 < end) {
        return (b[i + 1] === 0x85 || b[i + 1] === 0xa0) ? 2 : 0;
    }
    if (i + 2 >= end) {
        return 0;
    }
    var c1 = b[i + 1], c2 = b[i + 2];
    if (c0 === 0xe1) {
        return ((c1 === 0x9a && c2 === 0x80) || (c1 === 0xa0 && c2 === 0x8e)) ? 3 : 0;
    }
    if (c0 === 0xe2 && c1 === 0x80) {
        return ((c2 >= 0x80 && c2 <= 0x8d) || c2 === 0xa8 || c2 === 0xa9 || c2 === 0xaf) ? 3 : 0;
    }
    if (c0 === 0xe2 && c1 === 0x81) {
        return (c2 === 0x9f || c2 === 0xa0) ? 3 : 0;
    }
    if (c0 === 0xe3) {
        return (c1 === 0x80 && c2 === 0x80) ? 3 : 0;
    }
    if (c0 === 0xef) {
        return (c1 === 0xbb && c2 === 0xbf) ? 3 : 0;
    }
    return 0;
}

// Index past the whitespace that starts at b[i].
function skipSpace(b, i, end) {
    while (i < end) {
        var n = utf8SpaceAt(b, i, end) || (isSpaceByte(b[i]) ? 1 : 0);
        if (!n) {
            break;
        }
        i += n;
    }
    return i;
}

// Index of the end of b[start:end] with trailing whitespace dropped (a UTF-8 sequence is tried before its
// last byte alone, so that 0x85/0xa0 ending one is never taken as a Latin-1 space by itself).
function trimEnd(b, start, end) {
    while (end > start) {
        if (end - 3 >= start && utf8SpaceAt(b, end - 3, end) === 3) {
            end -= 3;
        } else if (end - 2 >= start && utf8SpaceAt(b, end - 2, end) === 2) {
            end -= 2;
        } else if (isSpaceByte(b[end - 1])) {
            end -= 1;
        } else {
            break;
        }
    }
    return end;
}

var BEARER = [0x62, 0x65, 0x61, 0x72, 0x65, 0x72];  // "bearer"

// Index of the token when b[start:end] begins with the scheme "Bearer" (any case) followed by whitespace or
// nothing; else start (the whole value is the token).
function skipScheme(b, start, end) {
    if (end - start < BEARER.length) {
        return start;
    }
    for (var k = 0; k < BEARER.length; k++) {
        if ((b[start + k] | 0x20) !== BEARER[k]) {
            return start;
        }
    }
    var after = start + BEARER.length;
    var token = skipSpace(b, after, end);
    return (token > after || after === end) ? token : start;
}

function token_bytes(raw) {
    var end = trimEnd(raw, 0, raw.length);
    var start = skipSpace(raw, 0, end);
    start = skipScheme(raw, start, end);
    return raw.slice(start, end);
}

function key_id(r) {
    var raw = r.rawVariables.http_authorization;
    if (!raw || !raw.length) {
        return '';
    }
    var token = token_bytes(raw);
    if (!token.length) {
        return '';
    }
    return crypto.createHash('sha256').update(token).digest('hex');
}

export default {key_id};
