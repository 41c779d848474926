package cache_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// The attacker's view of the cache layout, written from cache/codec.go the
// way someone who read the source would (there is no exported helper):
//
//   - key: "s:" + hex(SHA-256(blockA || blockB || token)), with
//     blockX = HMAC-SHA256(secret, "ayzauth/token-hash-X/v1\x00" + namespace);
//   - value: version 1, kind (1 session, 2 tombstone), expiry (Unix ms, big
//     endian, 8 bytes), a 32-byte HMAC-SHA256 tag over key || value[0:10] ||
//     payload, then the payload (the session's JSON).
//
// The tests grant the attacker the token-hash key (so that they can aim at
// the key of any token) but never the value-authentication key.

func derivedKey(secret []byte, label, namespace string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("ayzauth/" + label + "/v1\x00" + namespace))
	return m.Sum(nil)
}

// storeKeyOf is the cache key (without the Redis store's prefix) under
// which a verifier configured with secret and namespace caches token.
func storeKeyOf(secret []byte, namespace, token string) string {
	h := sha256.New()
	h.Write(derivedKey(secret, "token-hash-a", namespace))
	h.Write(derivedKey(secret, "token-hash-b", namespace))
	h.Write([]byte(token))
	return "s:" + hex.EncodeToString(h.Sum(nil))
}

const (
	valueHeaderLen = 42
	kindSession    = 1
	kindTombstone  = 2
)

// sealWith builds a value in the verifier's layout, tagged with macKey.
func sealWith(macKey []byte, key string, kind byte, expMillis int64, payload []byte) []byte {
	v := make([]byte, 10, valueHeaderLen+len(payload))
	v[0], v[1] = 1, kind
	binary.BigEndian.PutUint64(v[2:10], uint64(expMillis))
	m := hmac.New(sha256.New, macKey)
	m.Write([]byte(key))
	m.Write(v)
	m.Write(payload)
	v = m.Sum(v)
	return append(v, payload...)
}

// randomToken is a well-formed opaque session token nobody ever verified.
func randomToken(t *testing.T) string {
	b := make([]byte, 33)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b) // 44 characters
}

// TestForgedValueCannotMintASession: an attacker with write access to
// Redis (a raw client against the test's redis-server) who knows the cache
// layout and can compute keys, but not the value-authentication key,
// plants values; a fresh instance (own store, nothing decoded in process)
// never serves what they planted: it asks Stytch, which refuses the
// attacker's token and vouches for the victim's genuine session.
//
// It fails if the HMAC check is disabled (every case below would then be
// served from the cache).
func TestForgedValueCannotMintASession(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr()
	f := newFleet(t, 1, url)
	secret, ns := []byte(f.emu.Secret()), f.emu.ProjectID()
	victim := f.session(t, stytchtest.SessionParams{Roles: []string{"reader"}, CustomClaims: map[string]any{"tier": "basic"}})
	genuine, err := f.instances[0].cv.Verify(ctxT(t), victim.Token)
	require.NoError(t, err)
	require.Equal(t, []string{"reader"}, genuine.Roles)

	// The attacker's layout is right: the victim's value is where they
	// expect it, and they can read it.
	victimKey := storeKeyOf(secret, ns, victim.Token)
	require.Equal(t, []string{"ayz_auth:" + victimKey}, redisKeys(t, srv), "the key derivation matches the verifier's")
	raw, _ := srv.MustDo("GET", "ayz_auth:"+victimKey).(string)
	stored := []byte(raw)
	require.Greater(t, len(stored), valueHeaderLen)
	require.Equal(t, byte(kindSession), stored[1])
	// And so is their value layout: with the real value key (which they do
	// not have) they would reproduce the stored value byte for byte.
	realMAC := derivedKey(secret, "value-mac", ns)
	require.Equal(t, stored, sealWith(realMAC, victimKey, stored[1], int64(binary.BigEndian.Uint64(stored[2:10])), stored[valueHeaderLen:]),
		"the attacker's layout matches the verifier's")

	plant := func(t *testing.T, key string, value []byte) {
		t.Helper()
		srv.MustDo("SET", "ayz_auth:"+key, string(value), "PX", "600000")
		got, _ := srv.MustDo("GET", "ayz_auth:"+key).(string)
		require.Equal(t, string(value), got)
	}
	// verifyFresh verifies token on a new instance sharing the Redis and
	// returns the result, how many Authenticate calls it made and its log.
	verifyFresh := func(t *testing.T, token string) (*verifier.Session, error, int, string) {
		t.Helper()
		logs := &bytes.Buffer{}
		in := f.addInstance(t, url, fleetOptions{redis: redis.Options{OpTimeout: testOpTimeout}}, func(c *cache.VerifierConfig) {
			c.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil))
		})
		before := f.emu.Calls(stytchtest.Authenticate)
		s, err := in.cv.Verify(ctxT(t), token)
		calls := f.emu.Calls(stytchtest.Authenticate) - before
		require.NoError(t, in.cv.Close())
		return s, err, calls, logs.String()
	}
	// refused: the attacker's token got nothing from the cache.
	refused := func(t *testing.T, token, key string) {
		t.Helper()
		s, err, calls, logs := verifyFresh(t, token)
		require.ErrorIs(t, err, verifier.ErrInvalidSession)
		require.Nil(t, s, "a session was minted from a planted value")
		assert.Equal(t, 1, calls, "the planted value was not trusted: the token went to Stytch")
		assert.Contains(t, logs, "failed authentication")
		assert.Contains(t, logs, key, "the planted value was read and failed authentication")
	}
	// genuineOnly: the victim's token yields the genuine session, as
	// Stytch vouches for it, never the planted one.
	genuineOnly := func(t *testing.T) {
		t.Helper()
		s, err, calls, logs := verifyFresh(t, victim.Token)
		require.NoError(t, err)
		assert.Equal(t, 1, calls, "the planted value was not trusted: the token went to Stytch")
		assert.Equal(t, victim.MemberID, s.MemberID)
		assert.Equal(t, []string{"reader"}, s.Roles)
		assert.Equal(t, map[string]any{"tier": "basic"}, s.CustomClaims)
		assert.True(t, s.ExpiresAt.Equal(genuine.ExpiresAt), "expires %v, want %v", s.ExpiresAt, genuine.ExpiresAt)
		assert.Contains(t, logs, victimKey, "the planted value was read and failed authentication")
	}

	// (a) The victim's genuine value, copied under the key of a token of
	// the attacker's (never verified, so nothing of it is remembered).
	t.Run("copied under another token's key", func(t *testing.T) {
		tok := randomToken(t)
		key := storeKeyOf(secret, ns, tok)
		plant(t, key, stored)
		refused(t, tok, key)
	})

	// (b) A session of the attacker's making (admin role and claims, long
	// expiry), tagged in the right layout with keys they may hold or guess.
	now := time.Now()
	forged, err := json.Marshal(verifier.Session{
		MemberID: "member-test-attacker", SessionID: "member-session-test-attacker",
		OrganizationID: victim.OrganizationID, Roles: []string{"stytch_admin"},
		CustomClaims: map[string]any{"tier": "admin"}, ExpiresAt: now.Add(time.Hour), AuthenticatedAt: now,
	})
	require.NoError(t, err)
	wrongKeys := map[string][]byte{
		"wrong secret":        derivedKey([]byte("not-the-secret"), "value-mac", ns),
		"token-hash key":      derivedKey(secret, "token-hash-a", ns),
		"secret used raw":     secret,
		"value key, other ns": derivedKey(secret, "value-mac", ns+"-other"),
	}
	for name, macKey := range wrongKeys {
		t.Run("tag recomputed with "+name, func(t *testing.T) {
			tok := randomToken(t)
			key := storeKeyOf(secret, ns, tok)
			plant(t, key, sealWith(macKey, key, kindSession, now.Add(time.Hour).UnixMilli(), forged))
			refused(t, tok, key)
			// Under the victim's own key: the genuine session, not the
			// forged one.
			plant(t, victimKey, sealWith(macKey, victimKey, kindSession, now.Add(time.Hour).UnixMilli(), forged))
			genuineOnly(t)
		})
	}

	// Control: what acceptance of a planted value looks like (no Stytch
	// call), with the one key the attacker lacks. Only that key stands
	// between write access to Redis and a session.
	t.Run("control: tag made with the real key", func(t *testing.T) {
		tok := randomToken(t)
		key := storeKeyOf(secret, ns, tok)
		plant(t, key, sealWith(realMAC, key, kindSession, now.Add(time.Hour).UnixMilli(), forged))
		s, err, calls, _ := verifyFresh(t, tok)
		require.NoError(t, err)
		assert.Zero(t, calls)
		assert.Equal(t, "member-test-attacker", s.MemberID)
	})

	// (c) The victim's genuine value modified in place (same length).
	replaceAll := func(old, repl string) func(*testing.T, []byte) []byte {
		return func(t *testing.T, v []byte) []byte {
			require.Len(t, repl, len(old))
			require.True(t, bytes.Contains(v[valueHeaderLen:], []byte(old)), "%s not in the stored payload", old)
			return append(v[:valueHeaderLen:valueHeaderLen], bytes.ReplaceAll(v[valueHeaderLen:], []byte(old), []byte(repl))...)
		}
	}
	for name, tamper := range map[string]func(*testing.T, []byte) []byte{
		"roles":  replaceAll(`"reader"`, `"writer"`),
		"claims": replaceAll(`"tier":"basic"`, `"tier":"admin"`),
		"header expiry": func(_ *testing.T, v []byte) []byte {
			exp := binary.BigEndian.Uint64(v[2:10])
			binary.BigEndian.PutUint64(v[2:10], exp+uint64(365*24*time.Hour/time.Millisecond))
			return v
		},
		"session expiry": func(t *testing.T, v []byte) []byte {
			i := bytes.Index(v, []byte(`"session_expires_at":"`))
			require.Positive(t, i)
			i += len(`"session_expires_at":"`)
			copy(v[i:i+4], "2999") // the year
			return v
		},
		"member": replaceAll(victim.MemberID, "member-test-00000000-0000-0000-0000-000000000000"),
	} {
		t.Run("modified in place: "+name, func(t *testing.T) {
			bad := tamper(t, bytes.Clone(stored))
			require.Len(t, bad, len(stored))
			require.NotEqual(t, stored, bad)
			plant(t, victimKey, bad)
			genuineOnly(t)
		})
	}
}
