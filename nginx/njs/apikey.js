// The rate-limit key of an API request: SHA-256 of its Authorization header ("" when there is none,
// which nginx does not count). The raw key never becomes a key in nginx's shared memory.
var crypto = require('crypto');

function key_id(r) {
    var header = r.headersIn['Authorization'];
    if (!header) {
        return '';
    }
    return crypto.createHash('sha256').update(header).digest('hex');
}

export default {key_id};
