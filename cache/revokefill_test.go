package cache_test

import (
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// gatedVerifier holds every verification after the real verifier answered
// until release is closed: a fill that is in flight for as long as the
// test wants.
type gatedVerifier struct {
	verifier.Verifier
	once     sync.Once
	answered chan struct{} // closed when the first verification answered
	release  chan struct{}
}

func newGate(v verifier.Verifier) *gatedVerifier {
	return &gatedVerifier{Verifier: v, answered: make(chan struct{}), release: make(chan struct{})}
}

func (g *gatedVerifier) Verify(ctx context.Context, token string) (*verifier.Session, error) {
	s, err := g.Verifier.Verify(ctx, token)
	g.once.Do(func() { close(g.answered) })
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s, err
}

// TestRevocationOnOneInstanceWinsOverFillOnAnother: instance B has a
// verification in flight (Stytch, or the JWT's local check, already said
// yes) when instance A revokes the session and writes its tombstone to
// Redis. When B's fill lands it must not overwrite the tombstone: B and a
// fresh instance C refuse the token, from the tombstone (not from
// Stytch), and Redis holds the tombstone, not the session. For a JWT this
// is the only thing refusing it: it still verifies locally.
func TestRevocationOnOneInstanceWinsOverFillOnAnother(t *testing.T) {
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr()
	for _, kind := range []string{"token", "jwt"} {
		t.Run(kind, func(t *testing.T) {
			f := newFleet(t, 1, url)
			a := f.instances[0]
			gate := newGate(nil)
			b := f.addInstance(t, url, fleetOptions{redis: redis.Options{OpTimeout: testOpTimeout},
				wrap: func(sv *verifier.Stytch) verifier.Verifier { gate.Verifier = sv; return gate }})
			s := f.session(t, stytchtest.SessionParams{})
			tok := s.Token
			if kind == "jwt" {
				tok = s.JWT
			}
			rkey := "ayz_auth:" + storeKeyOf([]byte(f.emu.Secret()), f.emu.ProjectID(), tok)
			requireTombstone := func(t *testing.T) {
				t.Helper()
				raw, err := srv.Do("GET", rkey)
				require.NoError(t, err)
				v, ok := raw.(string)
				require.True(t, ok, "no value under the token's key: %v", raw)
				require.GreaterOrEqual(t, len(v), valueHeaderLen)
				require.Equal(t, byte(1), v[0])
				require.Equal(t, byte(kindTombstone), v[1], "Redis holds a session (kind %d), not the tombstone", v[1])
				require.Equal(t, valueHeaderLen, len(v), "a tombstone has no payload")
				exp := time.UnixMilli(int64(binary.BigEndian.Uint64([]byte(v[2:10]))))
				assert.True(t, exp.After(time.Now().Add(5*time.Minute)), "the tombstone outlives the JWT: expires %v", exp)
				pttl, err := srv.Do("PTTL", rkey)
				require.NoError(t, err)
				assert.Greater(t, pttl.(int64), int64(5*60*1000))
			}

			type result struct {
				sess *verifier.Session
				err  error
			}
			done := make(chan result, 1)
			go func() {
				sess, err := b.cv.Verify(ctxT(t), tok)
				done <- result{sess, err}
			}()
			select {
			case <-gate.answered:
			case r := <-done:
				t.Fatalf("B's verification ended before reaching its upstream: %v", r.err)
			case <-time.After(10 * time.Second):
				t.Fatal("B's verification never reached its upstream")
			}
			nothing, _ := srv.Do("EXISTS", rkey)
			require.Equal(t, int64(0), nothing, "nothing cached yet: B's fill is in flight")

			require.NoError(t, a.cv.Revoke(ctxT(t), tok)) // on A: B knows nothing of it in process
			assert.Equal(t, 1, f.emu.Calls(stytchtest.Revoke))
			requireTombstone(t)

			close(gate.release) // B's fill lands now
			var r result
			select {
			case r = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("B's verification did not finish after the release")
			}
			// The in-flight request was answered before the revocation:
			// it may be served, but only as the genuine session.
			if r.err != nil {
				require.ErrorIs(t, r.err, verifier.ErrInvalidSession)
			} else {
				assert.Equal(t, s.MemberID, r.sess.MemberID)
			}
			requireTombstone(t)

			calls := f.emu.Calls(stytchtest.Authenticate)
			for i := range 3 {
				_, err := b.cv.Verify(ctxT(t), tok)
				require.ErrorIs(t, err, verifier.ErrInvalidSession, "B, after its fill, read %d", i)
			}
			c := f.addInstance(t, url, fleetOptions{redis: redis.Options{OpTimeout: testOpTimeout}})
			for i := range 3 {
				_, err := c.cv.Verify(ctxT(t), tok)
				require.ErrorIs(t, err, verifier.ErrInvalidSession, "C, read %d", i)
			}
			assert.Equal(t, calls, f.emu.Calls(stytchtest.Authenticate), "refused by the tombstone in Redis, not by Stytch")
			requireTombstone(t)
		})
	}
}
