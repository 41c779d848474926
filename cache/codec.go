package cache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash"
	"sync"
	"unsafe"

	"github.com/ayzauth/ayzauth/verifier"
)

// Cached values are authenticated, so that write access to a shared store
// (Redis) alone cannot mint a session:
//
//	[0]      format version (1)
//	[1]      kind: 1 session, 2 tombstone (revoked)
//	[2:10]   expiry, Unix milliseconds, big endian
//	[10:42]  HMAC-SHA256(macKey, key || value[0:10] || payload)
//	[42:]    payload: the session's JSON form (never a token or JWT)
const (
	valueVersion  = 1
	kindSession   = 1
	kindTombstone = 2
	headerLen     = 42
	tagOff        = 10
)

var errBadValue = errors.New("cache: value fails authentication or is malformed")

// keys derives, from the Stytch secret and a namespace (the project ID),
// the key that hashes tokens into cache keys and the key that
// authenticates cached values (HMAC-SHA256 with distinct labels).
//
// The token hash is SHA-256 over a secret 64-byte block followed by the
// token: a keyed hash whose key block is hashed once, so that hashing a
// 44-character session token costs a single SHA-256 block. (HMAC would
// cost four; the hash only needs to be unpredictable without the secret,
// which a secret prefix of a full block gives.)
type keys struct {
	midstate []byte    // SHA-256 state after the 64-byte secret block
	pool     sync.Pool // of *hasher
	macKey   []byte
}

type hasher struct {
	h   hash.Hash
	buf [32]byte
}

func newKeys(secret []byte, namespace string) *keys {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte("ayzauth/" + label + "/v1\x00" + namespace))
		return m.Sum(nil)
	}
	block := append(derive("token-hash-a"), derive("token-hash-b")...) // 64 bytes
	d := sha256.New()
	d.Write(block)
	mid, err := d.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		panic("cache: sha256 state cannot be saved: " + err.Error()) // never: crypto/sha256 supports it
	}
	k := &keys{midstate: mid, macKey: derive("value-mac")}
	k.pool.New = func() any { return &hasher{h: sha256.New()} }
	return k
}

// tokenHash is the keyed hash of a token. It does not allocate.
func (k *keys) tokenHash(token string) (h [32]byte) {
	hs := k.pool.Get().(*hasher)
	_ = hs.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(k.midstate)
	hs.h.Write(unsafe.Slice(unsafe.StringData(token), len(token)))
	hs.h.Sum(hs.buf[:0])
	h = hs.buf
	k.pool.Put(hs)
	return h
}

// storeKey is the cache key of a token hash: "s:" and 64 hex digits.
func storeKey(h *[32]byte) string {
	const hexdigits = "0123456789abcdef"
	b := make([]byte, 2+64)
	b[0], b[1] = 's', ':'
	for i, c := range h {
		b[2+2*i] = hexdigits[c>>4]
		b[3+2*i] = hexdigits[c&0xf]
	}
	return unsafe.String(&b[0], len(b))
}

func (k *keys) mac(key string, header, payload []byte, dst []byte) []byte {
	m := hmac.New(sha256.New, k.macKey)
	m.Write([]byte(key))
	m.Write(header)
	m.Write(payload)
	return m.Sum(dst)
}

// encode returns the authenticated value for a session (or a tombstone
// when s is nil) expiring at expMillis.
func (k *keys) encode(key string, s *verifier.Session, expMillis int64) ([]byte, error) {
	var payload []byte
	kind := byte(kindTombstone)
	if s != nil {
		var err error
		if payload, err = json.Marshal(s); err != nil {
			return nil, err
		}
		kind = kindSession
	}
	v := make([]byte, headerLen, headerLen+len(payload))
	v[0], v[1] = valueVersion, kind
	binary.BigEndian.PutUint64(v[2:10], uint64(expMillis))
	k.mac(key, v[:tagOff], payload, v[tagOff:tagOff])
	return append(v, payload...), nil
}

// header is the parsed fixed part of a value.
type header struct {
	kind      byte
	expMillis int64
	tag       [32]byte
}

// parseHeader reads a value's header without checking its tag.
func parseHeader(v []byte) (header, bool) {
	if len(v) < headerLen || v[0] != valueVersion || (v[1] != kindSession && v[1] != kindTombstone) {
		return header{}, false
	}
	h := header{kind: v[1], expMillis: int64(binary.BigEndian.Uint64(v[2:10]))}
	copy(h.tag[:], v[tagOff:headerLen])
	return h, true
}

// decode authenticates a value read under key and decodes it. It returns a
// nil session for a tombstone.
func (k *keys) decode(key string, v []byte) (header, *verifier.Session, error) {
	h, ok := parseHeader(v)
	if !ok {
		return header{}, nil, errBadValue
	}
	var want [32]byte
	k.mac(key, v[:tagOff], v[headerLen:], want[:0])
	if !hmac.Equal(want[:], h.tag[:]) {
		return header{}, nil, errBadValue
	}
	if h.kind == kindTombstone {
		return h, nil, nil
	}
	s := new(verifier.Session)
	if err := json.Unmarshal(v[headerLen:], s); err != nil {
		return header{}, nil, errBadValue
	}
	return h, s, nil
}
