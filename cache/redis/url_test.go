package redis

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
)

// TestClientOptionFromURL: what the URL states wins; Options fill in only
// what it leaves out (design.md §4: STYTCH_REDIS_PASSWORD and
// STYTCH_REDIS_DB are "used when the URL has none").
func TestClientOptionFromURL(t *testing.T) {
	optTLS := &tls.Config{MinVersion: tls.VersionTLS13}
	opts := Options{Username: "optuser", Password: "optpass", DB: 3, TLS: optTLS}
	cases := []struct {
		name     string
		url      string
		opts     Options
		db       int
		user     string
		password string
		urlTLS   bool // TLS from the URL (rediss://), not opts.TLS
	}{
		{"nothing in the URL", "redis://h:6379", opts, 3, "optuser", "optpass", false},
		{"explicit /0", "redis://h:6379/0", opts, 0, "optuser", "optpass", false},
		{"explicit ?db=0", "redis://h:6379?db=0", opts, 0, "optuser", "optpass", false},
		{"explicit /5", "redis://h:6379/5", opts, 5, "optuser", "optpass", false},
		{"?db wins over the path", "redis://h:6379/5?db=0", opts, 0, "optuser", "optpass", false},
		{"trailing slash is no DB", "redis://h:6379/", opts, 3, "optuser", "optpass", false},
		{"unix path is no DB", "unix:///tmp/redis.sock", opts, 3, "optuser", "optpass", false},
		{"unix with ?db=0", "unix:///tmp/redis.sock?db=0", opts, 0, "optuser", "optpass", false},
		{"password in the URL", "redis://:urlpass@h:6379", opts, 3, "", "urlpass", false},
		{"user and password in the URL", "redis://alice:urlpass@h:6379/0", opts, 0, "alice", "urlpass", false},
		{"user only: password from Options", "redis://alice@h:6379", opts, 3, "alice", "optpass", false},
		{"empty password counts as none", "redis://:@h:6379", opts, 3, "optuser", "optpass", false},
		{"rediss keeps its TLS", "rediss://h:6380/0", opts, 0, "optuser", "optpass", true},
		{"zero Options", "redis://h:6379", Options{}, 0, "", "", false},
		{"zero Options, explicit /2", "redis://h:6379/2", Options{}, 2, "", "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			co, err := clientOptionFromURL(tc.url, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.db, co.SelectDB, "DB")
			assert.Equal(t, tc.user, co.Username, "username")
			assert.Equal(t, tc.password, co.Password, "password")
			switch {
			case tc.urlTLS:
				require.NotNil(t, co.TLSConfig)
				assert.NotSame(t, optTLS, co.TLSConfig, "rediss:// keeps its own TLS config")
			default:
				assert.Same(t, tc.opts.TLS, co.TLSConfig)
			}
		})
	}

	for _, bad := range []string{"http://h", "redis://h/notadb", "redis://h?db=x", "redis://h/1/2"} {
		_, err := clientOptionFromURL(bad, opts)
		assert.Error(t, err, bad)
	}
}

// TestURLDBAndPasswordPrecedence checks the precedence against a real
// redis-server with a password: an explicit /0 (or ?db=0) is database 0
// even when Options.DB is 3, and a URL with a user name but no password
// takes Options.Password.
func TestURLDBAndPasswordPrecedence(t *testing.T) {
	const pass = "s3cret"
	srv := redistest.Start(t, redistest.WithArgs("--requirepass", pass))
	ctx := ctxT(t)
	addr := srv.Addr()

	// dbOf reports which of databases 0..4 hold key, asked over fresh
	// connections (AUTH, SELECT n, EXISTS).
	dbOf := func(t *testing.T, key string) []int {
		t.Helper()
		var dbs []int
		for db := range 5 {
			s, err := New(ctx, Options{Addrs: []string{addr}, Password: pass, DB: db, KeyPrefix: "probe", DisableClientCache: true, OpTimeout: testOpTimeout})
			require.NoError(t, err)
			n, err := s.Client().Do(ctx, s.Client().B().Exists().Key(key).Build()).AsInt64()
			_ = s.Close()
			require.NoError(t, err)
			if n > 0 {
				dbs = append(dbs, db)
			}
		}
		return dbs
	}

	cases := []struct {
		name string
		url  string
		opts Options
		db   int
	}{
		{"explicit /0 beats Options.DB", "redis://:" + pass + "@" + addr + "/0", Options{DB: 3}, 0},
		{"explicit ?db=0 beats Options.DB", "redis://:" + pass + "@" + addr + "?db=0", Options{DB: 3}, 0},
		{"no DB in the URL: Options.DB", "redis://:" + pass + "@" + addr, Options{DB: 3}, 3},
		{"/4 in the URL", "redis://:" + pass + "@" + addr + "/4", Options{DB: 3}, 4},
		{"no password in the URL: Options.Password", "redis://" + addr + "/2", Options{Password: pass, DB: 3}, 2},
		{"user without password: Options.Password", "redis://default@" + addr + "/1", Options{Password: pass}, 1},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.KeyPrefix = "p"
			tc.opts.OpTimeout = testOpTimeout
			s, err := NewFromURL(ctx, tc.url, tc.opts)
			require.NoError(t, err)
			defer s.Close()
			key := "k" + string(rune('a'+i))
			require.NoError(t, s.Set(ctx, key, []byte("v"), time.Minute))
			v, err := s.Get(ctx, key)
			require.NoError(t, err)
			assert.Equal(t, "v", string(v))
			assert.Equal(t, []int{tc.db}, dbOf(t, s.Key(key)))
		})
	}

	// The URL's password wins over Options.Password.
	_, err := NewFromURL(ctx, "redis://:wrong@"+addr, Options{Password: pass})
	require.ErrorIs(t, err, cache.ErrUnavailable)
}
