package redis

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/redistest"
)

// connectBound bounds how long a connection attempt that must fail may
// take: it must end in an error, not hang. Far from any real dial time.
const connectBound = 20 * time.Second

// openURL is NewFromURL with cleanup, failing the test on error.
func openURL(t *testing.T, url string, opts Options) *Store {
	t.Helper()
	ctx := ctxT(t)
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpTimeout
	}
	s, err := NewFromURL(ctx, url, opts)
	require.NoError(t, err, url)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// inspector is what checkStoreAndCache needs of the server behind the
// stores: a way to count the GETs it served.
type inspector interface {
	CommandCalls(cmd string) int
	ResetStats()
}

// checkStoreAndCache checks that a stores and reads a value, that a key
// written by another client b is read once from srv and then served from
// a's client-side cache (no further GET reaches srv), and that b's next
// write of it reaches a as an invalidation.
func checkStoreAndCache(t *testing.T, srv inspector, a, b *Store) {
	t.Helper()
	ctx := ctxT(t)
	require.True(t, a.ClientSideCaching(), "client-side caching")

	require.NoError(t, a.Set(ctx, "own", []byte("v0"), time.Minute))
	v, err := a.Get(ctx, "own")
	require.NoError(t, err)
	require.Equal(t, "v0", string(v))

	require.NoError(t, b.Set(ctx, "k", []byte("v1"), time.Minute))
	srv.ResetStats()
	for i := range 5 {
		v, _, hit, err := a.get(ctx, "k", false)
		require.NoError(t, err)
		require.Equal(t, "v1", string(v))
		require.Equal(t, i > 0, hit, "read %d from the client-side cache", i)
	}
	assert.Equal(t, 1, srv.CommandCalls("get"), "GETs sent for 5 reads")

	require.NoError(t, b.Set(ctx, "k", []byte("v2"), time.Minute))
	waitValue(t, a, "k", "v2")
}

// requireRefused checks that connecting to url fails with
// cache.ErrUnavailable, and within connectBound.
func requireRefused(t *testing.T, url string, opts Options) error {
	t.Helper()
	var err error
	within(t, connectBound, "connecting to "+url, func() {
		var s *Store
		s, err = NewFromURL(ctxT(t), url, opts)
		if s != nil {
			_ = s.Close()
		}
	})
	require.Error(t, err, "connecting to %s", url)
	require.ErrorIs(t, err, cache.ErrUnavailable)
	return err
}

// TestTLSConnect connects through TLS to a redis-server that serves TLS
// with a throwaway CA (redistest.StartTLS; its plain port is used only to
// inspect the server).
func TestTLSConnect(t *testing.T) {
	srv := redistest.StartTLS(t)
	addr := srv.TLSAddr()

	_, err := redistest.Do(addr, "PING")
	require.Error(t, err, "the TLS port must not answer plain RESP")

	t.Run("rediss URL with Options.TLS", func(t *testing.T) {
		opts := Options{TLS: srv.Certs.ClientConfig()}
		ctx := ctxT(t)
		a, err := NewFromURL(ctx, "rediss://"+addr, withTestTimeout(opts))
		// A rediss:// URL uses Options.TLS (here, the private CA), not
		// only the system roots.
		require.NoError(t, err)
		t.Cleanup(func() { _ = a.Close() })
		b := openURL(t, "rediss://"+addr, opts)
		assert.Equal(t, "standalone", a.Mode())
		checkStoreAndCache(t, srv, a, b)
	})

	t.Run("redis URL with Options.TLS", func(t *testing.T) {
		opts := Options{TLS: srv.Certs.ClientConfig()}
		a := openURL(t, "redis://"+addr, opts)
		b := openURL(t, "redis://"+addr, opts)
		assert.Equal(t, "standalone", a.Mode())
		checkStoreAndCache(t, srv, a, b)
	})

	t.Run("rediss URL with skip_verify", func(t *testing.T) {
		a := openURL(t, "rediss://"+addr+"?skip_verify=true", Options{})
		b := openURL(t, "rediss://"+addr+"?skip_verify=true", Options{})
		checkStoreAndCache(t, srv, a, b)
	})

	t.Run("without the CA the connection is refused", func(t *testing.T) {
		// rediss:// without a CA: system roots, which do not know it.
		err := requireRefused(t, "rediss://"+addr, withTestTimeout(Options{}))
		var uae x509.UnknownAuthorityError
		assert.ErrorAs(t, err, &uae)
		// Options.TLS trusting another throwaway CA.
		err = requireRefused(t, "redis://"+addr, withTestTimeout(Options{TLS: redistest.NewCerts(t).ClientConfig()}))
		assert.ErrorAs(t, err, &uae)
		// A server name the certificate does not cover.
		cfg := srv.Certs.ClientConfig()
		cfg.ServerName = "redis.example"
		err = requireRefused(t, "redis://"+addr, withTestTimeout(Options{TLS: cfg}))
		var hne x509.HostnameError
		assert.ErrorAs(t, err, &hne)
	})

	t.Run("plain RESP to the TLS port is refused", func(t *testing.T) {
		requireRefused(t, "redis://"+addr, withTestTimeout(Options{DialTimeout: 2 * time.Second}))
	})

	t.Run("TLS to a plain port is refused", func(t *testing.T) {
		// redis-server reads the ClientHello as an unfinished inline
		// command and answers nothing: the handshake ends at the dial
		// timeout.
		requireRefused(t, "redis://"+srv.Addr(), withTestTimeout(Options{TLS: srv.Certs.ClientConfig()}))
	})
}

func withTestTimeout(opts Options) Options {
	if opts.OpTimeout == 0 {
		opts.OpTimeout = testOpTimeout
	}
	return opts
}

// TestSentinelConnect connects through Sentinel to a master (one and two
// sentinels, as in NewFromURL's doc comment).
func TestSentinelConnect(t *testing.T) {
	master := redistest.Start(t)
	s1 := redistest.StartSentinel(t, "mymaster", master)
	s2 := redistest.StartSentinel(t, "mymaster", master)

	a := openURL(t, "redis://"+s1.Addr()+"?master_set=mymaster", Options{})
	b := openURL(t, "redis://"+s1.Addr()+"?addr="+s2.Addr()+"&master_set=mymaster", Options{})
	assert.Equal(t, "sentinel", a.Mode())
	assert.Equal(t, "sentinel", b.Mode())
	checkStoreAndCache(t, master, a, b)

	// The values live on the master.
	assert.Equal(t, "v2", master.MustDo("GET", a.Key("k")))
	assert.Equal(t, "v0", master.MustDo("GET", a.Key("own")))

	t.Run("unknown master set is refused", func(t *testing.T) {
		requireRefused(t, "redis://"+s1.Addr()+"?master_set=nosuch", withTestTimeout(Options{}))
	})
}
