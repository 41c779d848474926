package cache_test

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// Two Stytch projects whose services share one Redis (same redis-server,
// same key prefix "ayz_auth") must not see each other's entries. Each
// project is a fleet of its own: its own emulator (own project ID and
// secret, its tokens unknown to the other) and instances.
//
// Every test runs in three setups: each project's caching verifier keyed by
// its own Stytch secret and project ID (as documented); both given the
// same cache secret, where only VerifierConfig.Namespace keeps them apart
// (the tests fail if the namespace is left out of the key derivation);
// and both without a Namespace, where only their secrets do (the tests
// fail if the secret is left out).

type isolationSetup struct {
	name         string
	sharedSecret []byte // nil: each project's own Stytch secret
	noNamespace  bool   // Namespace "" instead of the project ID
}

var isolationSetups = []isolationSetup{
	{name: "own secrets"},
	{name: "same cache secret", sharedSecret: []byte("one-cache-secret-for-both-projects")},
	{name: "no namespace", noNamespace: true},
}

// project is one project's service over the shared Redis.
type project struct {
	*fleet
	url    string
	secret []byte // the caching verifiers' Secret
	ns     string // their Namespace
	cfg    func(*cache.VerifierConfig)
}

func newProject(t *testing.T, url string, s isolationSetup) *project {
	t.Helper()
	cfg := func(c *cache.VerifierConfig) {
		if s.sharedSecret != nil {
			c.Secret = s.sharedSecret
		}
		if s.noNamespace {
			c.Namespace = ""
		}
	}
	f := newFleet(t, 1, url, cfg)
	p := &project{fleet: f, url: url, secret: []byte(f.emu.Secret()), ns: f.emu.ProjectID(), cfg: cfg}
	if s.sharedSecret != nil {
		p.secret = s.sharedSecret
	}
	if s.noNamespace {
		p.ns = ""
	}
	return p
}

// newProjects returns projects A and B over one fresh redis-server.
func newProjects(t *testing.T, s isolationSetup) (*redistest.Server, *project, *project) {
	t.Helper()
	srv := redistest.Start(t)
	url := "redis://" + srv.Addr()
	a, b := newProject(t, url, s), newProject(t, url, s)
	require.NotEqual(t, a.emu.ProjectID(), b.emu.ProjectID())
	require.NotEqual(t, a.emu.Secret(), b.emu.Secret())
	require.False(t, a.ns == b.ns && bytes.Equal(a.secret, b.secret), "the setup separates the projects")
	return srv, a, b
}

// freshInstance is one more instance of the project (nothing in process:
// no memo, no client-side cache, no negative cache), with its log.
func (p *project) freshInstance(t *testing.T) (*instance, *bytes.Buffer) {
	t.Helper()
	logs := &bytes.Buffer{}
	in := p.addInstance(t, p.url, fleetOptions{redis: redis.Options{OpTimeout: testOpTimeout}}, p.cfg, func(c *cache.VerifierConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: logs}, nil))
	})
	return in, logs
}

func (p *project) authCalls() int { return p.emu.Calls(stytchtest.Authenticate) }

func redisGet(t *testing.T, srv *redistest.Server, key string) []byte {
	t.Helper()
	v, err := srv.Do("GET", key)
	require.NoError(t, err)
	s, ok := v.(string)
	require.True(t, ok, "no value under %s", key)
	return []byte(s)
}

// written runs action and returns the one key it added to Redis, as
// observed with KEYS (not computed): a write that lands on a key already
// there (another project's) adds none and fails the test.
func written(t *testing.T, srv *redistest.Server, what string, action func()) string {
	t.Helper()
	before := redisKeys(t, srv)
	action()
	var added []string
	for _, k := range redisKeys(t, srv) {
		if !slices.Contains(before, k) {
			added = append(added, k)
		}
	}
	require.Len(t, added, 1, "%s: want one new key; before %v, after %v", what, before, redisKeys(t, srv))
	return added[0]
}

// unprefixed is a Redis key without the store's prefix: the verifier's
// cache key, which the value's tag covers.
func unprefixed(t *testing.T, key string) string {
	t.Helper()
	k, ok := strings.CutPrefix(key, "ayz_auth:")
	require.True(t, ok, key)
	return k
}

// TestProjectIsolationForeignSessionNotServed: a session of project A,
// verified by A (its entry is in Redis), presented to project B is never
// served from A's entry: B asks its own Stytch project, which does not
// know the token, and refuses it.
func TestProjectIsolationForeignSessionNotServed(t *testing.T) {
	for _, setup := range isolationSetups {
		t.Run(setup.name, func(t *testing.T) {
			srv, a, b := newProjects(t, setup)
			sA := a.session(t, stytchtest.SessionParams{})
			kA := written(t, srv, "A's fill", func() {
				got, err := a.instances[0].cv.Verify(ctxT(t), sA.Token)
				require.NoError(t, err)
				require.Equal(t, sA.MemberID, got.MemberID)
			})
			stored := redisGet(t, srv, kA)

			for i := range 2 { // the second is refused in process (negative cache)
				s, err := b.instances[0].cv.Verify(ctxT(t), sA.Token)
				require.ErrorIs(t, err, verifier.ErrInvalidSession, "attempt %d", i)
				require.Nil(t, s, "attempt %d: B served A's session (member %s)", i, sA.MemberID)
			}
			assert.Equal(t, 1, b.authCalls(), "B asked its own Stytch project")
			assert.Equal(t, 1, a.authCalls(), "nobody asked A's project again")

			// B's refusal left A's entry alone, and A still serves it from
			// the cache.
			assert.Equal(t, []string{kA}, redisKeys(t, srv), "a rejection is not stored")
			assert.Equal(t, stored, redisGet(t, srv, kA))
			got, err := a.instances[0].cv.Verify(ctxT(t), sA.Token)
			require.NoError(t, err)
			assert.Equal(t, sA.MemberID, got.MemberID)
			assert.Equal(t, 1, a.authCalls())
		})
	}
}

// TestProjectIsolationKeysDiffer: for the same token string, A and B use
// different Redis keys, as observed in Redis. Rejections are not stored,
// so the keys are made visible with revocations (whose tombstones are
// written even when Stytch does not know the token): of a token neither
// project knows, and of A's session token, whose entry in A B must not
// overwrite.
func TestProjectIsolationKeysDiffer(t *testing.T) {
	for _, setup := range isolationSetups {
		t.Run(setup.name, func(t *testing.T) {
			srv, a, b := newProjects(t, setup)

			tok := randomToken(t) // unknown to both emulators
			for _, p := range []*project{a, b} {
				_, err := p.instances[0].cv.Verify(ctxT(t), tok)
				require.ErrorIs(t, err, verifier.ErrInvalidSession)
			}
			require.Empty(t, redisKeys(t, srv), "rejections are not stored")
			kA := written(t, srv, "A's revocation", func() {
				require.NoError(t, a.instances[0].cv.Revoke(ctxT(t), tok))
			})
			kB := written(t, srv, "B's revocation of the same token string", func() {
				require.NoError(t, b.instances[0].cv.Revoke(ctxT(t), tok))
			})
			assert.NotEqual(t, kA, kB)
			assert.Len(t, redisKeys(t, srv), 2)

			sA := a.session(t, stytchtest.SessionParams{})
			kAs := written(t, srv, "A's fill", func() {
				_, err := a.instances[0].cv.Verify(ctxT(t), sA.Token)
				require.NoError(t, err)
			})
			callsA := a.authCalls()
			stored := redisGet(t, srv, kAs)
			_, err := b.instances[0].cv.Verify(ctxT(t), sA.Token)
			require.ErrorIs(t, err, verifier.ErrInvalidSession)
			kBs := written(t, srv, "B's tombstone for A's token", func() {
				require.NoError(t, b.instances[0].cv.Revoke(ctxT(t), sA.Token))
			})
			assert.NotEqual(t, kAs, kBs)
			assert.Equal(t, stored, redisGet(t, srv, kAs), "A's entry is untouched")
			got, err := a.instances[0].cv.Verify(ctxT(t), sA.Token)
			require.NoError(t, err, "B's revocation does not reach A")
			assert.Equal(t, sA.MemberID, got.MemberID)
			assert.Equal(t, callsA, a.authCalls(), "served from A's entry")

			// The keys are those of the layout forgery_test.go documents.
			assert.Equal(t, "ayz_auth:"+storeKeyOf(a.secret, a.ns, tok), kA)
			assert.Equal(t, "ayz_auth:"+storeKeyOf(b.secret, b.ns, tok), kB)
		})
	}
}

// TestProjectIsolationCopiedValueRejected: A's stored value placed under
// B's key for the same token (an attacker with Redis access, or a
// misconfiguration) fails B's authentication: B asks its own project and
// refuses A's token, and for a token of its own serves its own member.
// The same holds for A's session re-tagged with A's value key for B's key
// (what an A instance keyed like B would write); only B's value key is
// accepted, as the control shows.
func TestProjectIsolationCopiedValueRejected(t *testing.T) {
	for _, setup := range isolationSetups {
		t.Run(setup.name, func(t *testing.T) {
			srv, a, b := newProjects(t, setup)
			sA := a.session(t, stytchtest.SessionParams{})
			kA := written(t, srv, "A's fill", func() {
				_, err := a.instances[0].cv.Verify(ctxT(t), sA.Token)
				require.NoError(t, err)
			})
			stored := redisGet(t, srv, kA)
			require.Greater(t, len(stored), valueHeaderLen)
			require.Equal(t, byte(kindSession), stored[1])
			require.Contains(t, string(stored[valueHeaderLen:]), sA.MemberID)
			expMs := int64(binary.BigEndian.Uint64(stored[2:10]))
			// B's key for A's token, observed through a tombstone of B's
			// (from an instance not used below: the fresh instances have no
			// tombstone in process, so they read what is planted there).
			kB := written(t, srv, "B's key for A's token", func() {
				require.NoError(t, b.instances[0].cv.Revoke(ctxT(t), sA.Token))
			})

			plant := func(t *testing.T, key string, value []byte) {
				t.Helper()
				srv.MustDo("SET", key, string(value), "PX", "600000")
			}
			macA := derivedKey(a.secret, "value-mac", a.ns)
			macB := derivedKey(b.secret, "value-mac", b.ns)
			plants := map[string]func(t *testing.T, key string) []byte{
				"A's value verbatim": func(*testing.T, string) []byte { return stored },
				"A's session tagged by A for B's key": func(t *testing.T, key string) []byte {
					return sealWith(macA, unprefixed(t, key), kindSession, expMs, stored[valueHeaderLen:])
				},
			}
			for name, value := range plants {
				t.Run(name, func(t *testing.T) {
					// A's token: refused by B's project, not served.
					plant(t, kB, value(t, kB))
					in, logs := b.freshInstance(t)
					before := b.authCalls()
					s, err := in.cv.Verify(ctxT(t), sA.Token)
					require.ErrorIs(t, err, verifier.ErrInvalidSession)
					require.Nil(t, s, "B served A's session from the planted value")
					assert.Equal(t, 1, b.authCalls()-before, "B asked its own project")
					assert.Contains(t, logs.String(), "failed authentication")
					assert.Contains(t, logs.String(), unprefixed(t, kB), "the planted value was read and failed authentication")

					// A token of B's: B's own member, never A's.
					sB := b.session(t, stytchtest.SessionParams{})
					kBs := written(t, srv, "B's fill", func() {
						_, err := b.instances[0].cv.Verify(ctxT(t), sB.Token)
						require.NoError(t, err)
					})
					plant(t, kBs, value(t, kBs))
					in, logs = b.freshInstance(t)
					before = b.authCalls()
					s, err = in.cv.Verify(ctxT(t), sB.Token)
					require.NoError(t, err)
					assert.Equal(t, sB.MemberID, s.MemberID, "B served A's member for its own token")
					assert.Equal(t, 1, b.authCalls()-before, "B asked its own project")
					assert.Contains(t, logs.String(), unprefixed(t, kBs), "the planted value was read and failed authentication")
				})
			}

			// Control: the same session tagged with B's value key would be
			// served by B without asking Stytch. Only that key, which A's
			// configuration does not yield, keeps A's values out of B.
			t.Run("control: tagged with B's value key", func(t *testing.T) {
				tok := randomToken(t)
				key := written(t, srv, "B's key for a new token", func() {
					require.NoError(t, b.instances[0].cv.Revoke(ctxT(t), tok))
				})
				plant(t, key, sealWith(macB, unprefixed(t, key), kindSession, expMs, stored[valueHeaderLen:]))
				in, _ := b.freshInstance(t)
				before := b.authCalls()
				s, err := in.cv.Verify(ctxT(t), tok)
				require.NoError(t, err)
				assert.Equal(t, sA.MemberID, s.MemberID)
				assert.Zero(t, b.authCalls()-before)
			})
		})
	}
}

// TestProjectIsolationRevocationStaysInProject: revocations in A (of A's
// own session, and of B's session token presented to A, e.g. a logout
// with the other project's cookie) write nothing B reads as a tombstone:
// B's entry is untouched and B's session keeps working, from the cache;
// A's tombstone copied under B's key is not trusted either.
func TestProjectIsolationRevocationStaysInProject(t *testing.T) {
	for _, setup := range isolationSetups {
		t.Run(setup.name, func(t *testing.T) {
			srv, a, b := newProjects(t, setup)
			sA := a.session(t, stytchtest.SessionParams{})
			sB := b.session(t, stytchtest.SessionParams{})
			written(t, srv, "A's fill", func() {
				_, err := a.instances[0].cv.Verify(ctxT(t), sA.Token)
				require.NoError(t, err)
			})
			kB := written(t, srv, "B's fill", func() {
				_, err := b.instances[0].cv.Verify(ctxT(t), sB.Token)
				require.NoError(t, err)
			})
			_, err := b.instances[0].cv.Verify(ctxT(t), sB.Token)
			require.NoError(t, err)
			require.Equal(t, 1, b.authCalls())
			entryB := redisGet(t, srv, kB)
			require.Equal(t, byte(kindSession), entryB[1])

			require.NoError(t, a.instances[0].cv.Revoke(ctxT(t), sA.Token))
			_, err = a.instances[0].cv.Verify(ctxT(t), sA.Token)
			require.ErrorIs(t, err, verifier.ErrInvalidSession, "A's revocation took effect in A")
			kT := written(t, srv, "A's tombstone for B's token", func() {
				require.NoError(t, a.instances[0].cv.Revoke(ctxT(t), sB.Token))
			})
			tombA := redisGet(t, srv, kT)
			require.Equal(t, byte(kindTombstone), tombA[1])

			assert.Equal(t, entryB, redisGet(t, srv, kB), "B's entry is untouched")
			got, err := b.instances[0].cv.Verify(ctxT(t), sB.Token)
			require.NoError(t, err, "B's session survives A's revocations")
			assert.Equal(t, sB.MemberID, got.MemberID)
			in, _ := b.freshInstance(t)
			got, err = in.cv.Verify(ctxT(t), sB.Token)
			require.NoError(t, err, "B's session survives A's revocations (fresh instance)")
			assert.Equal(t, sB.MemberID, got.MemberID)
			assert.Equal(t, 1, b.authCalls(), "served from B's entry")
			state, err := b.emu.Session(sB.ID)
			require.NoError(t, err)
			assert.False(t, state.Revoked, "A's logout did not reach B's project")

			// A's tombstone copied under B's key fails B's authentication:
			// B asks its project, which vouches for the session.
			srv.MustDo("SET", kB, string(tombA), "PX", "600000")
			in, logs := b.freshInstance(t)
			got, err = in.cv.Verify(ctxT(t), sB.Token)
			require.NoError(t, err, "B read A's tombstone as its own")
			assert.Equal(t, sB.MemberID, got.MemberID)
			assert.Equal(t, 2, b.authCalls(), "B asked its own project")
			assert.Contains(t, logs.String(), unprefixed(t, kB), "the copied tombstone was read and failed authentication")
		})
	}
}
