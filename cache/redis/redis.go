// Package redis is a cache.Store on Redis through rueidis, with
// server-assisted client-side caching.
//
// Reads are DoCache(GET): repeated reads of a key are answered from process
// memory until Redis pushes an invalidation (another writer changed the key),
// the server TTL runs out, or Options.LocalTTL passes. Writes are
// SET key value PXAT <absolute expiry> (NX for Add), deletes are DEL. Keys
// are Options.KeyPrefix + ":" + key.
//
// Failure handling (see docs/cache-backends.md for the measured traps):
//
//   - Every call runs under Options.OpTimeout (rueidis retries read-only
//     commands until the context ends).
//   - A circuit breaker fails fast with cache.ErrUnavailable after
//     Options.FailureThreshold consecutive failures, then probes again after
//     Options.Cooldown, so a dead Redis costs almost nothing per request and
//     caching resumes on its own when Redis returns.
//   - Every backend failure matches cache.ErrUnavailable; a missing key
//     matches cache.ErrNotFound.
//   - A silent partition keeps serving client-side cached hits until the
//     background PING notices it: at most about 2 x the ping interval
//     (ConnWriteTimeout/2, between 100 ms and 1 s) + Options.ConnWriteTimeout
//     (default 2 s, so about 4 s). That is the worst-case delay before
//     another instance's revocation is seen.
//   - After this process's own Set/Add/Delete of a key, reads of that key
//     bypass the client-side cache for Options.RecentWriteWindow, because
//     the invalidation of our own write can arrive after the write's reply
//     (redis/rueidis#534).
//   - If the server refuses client tracking (old Redis, CLIENT renamed,
//     some managed services), New falls back to plain reads;
//     ClientSideCaching reports which mode is in use.
package redis

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	neturl "net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/rueidis"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/internal/telemetry"
)

// Defaults for Options.
const (
	DefaultKeyPrefix         = "ayz_auth"
	DefaultOpTimeout         = 100 * time.Millisecond
	DefaultLocalTTL          = time.Minute
	DefaultConnWriteTimeout  = 2 * time.Second
	DefaultDialTimeout       = time.Second
	DefaultCacheSizeEachConn = 16 << 20
	DefaultFailureThreshold  = 5
	DefaultCooldown          = time.Second
	DefaultRecentWriteWindow = 3 * time.Second
)

// Options configures a Store. Zero fields take the defaults above.
type Options struct {
	// Addrs are the Redis addresses ("host:port") for New. One address of
	// a cluster is enough (cluster mode is detected); with MasterSet they
	// are Sentinel addresses. NewFromURL ignores Addrs.
	Addrs []string
	// MasterSet selects Sentinel mode with this master set name (New only;
	// URLs use ?master_set=).
	MasterSet string
	// Username and Password authenticate (ACL user or requirepass). With
	// NewFromURL, Password applies when the URL has no password, and
	// Username when the URL has neither a user name nor a password.
	Username string
	Password string
	// DB selects a database (not in cluster mode). With NewFromURL it
	// applies only when the URL selects none.
	DB int
	// TLS enables TLS. With NewFromURL it applies only when the URL is not
	// rediss://.
	TLS *tls.Config

	// KeyPrefix is prepended to every key with a ":" separator.
	KeyPrefix string
	// OpTimeout bounds every call (default 100 ms). A caller's earlier
	// deadline wins.
	OpTimeout time.Duration
	// LocalTTL caps how long a value stays in the client-side cache; the
	// server TTL caps it too (default 1 min).
	LocalTTL time.Duration
	// ConnWriteTimeout bounds how long a dead or partitioned connection
	// goes unnoticed, and so how long cached hits can be stale in a silent
	// partition: about ConnWriteTimeout + 2 x the ping interval
	// (ConnWriteTimeout/2, at most 1 s). Default 2 s. A URL's
	// write_timeout wins.
	ConnWriteTimeout time.Duration
	// DialTimeout bounds connection attempts (default 1 s). A URL's
	// dial_timeout wins.
	DialTimeout time.Duration
	// CacheSizeEachConn is the client-side cache budget in bytes per
	// connection (default 16 MiB; rueidis may open several connections per
	// node).
	CacheSizeEachConn int
	// DisableClientCache turns client-side caching off.
	DisableClientCache bool
	// FailureThreshold is the number of consecutive failures that opens
	// the circuit breaker (default 5).
	FailureThreshold int
	// Cooldown is how long the open breaker fails fast before probing
	// (default 1 s).
	Cooldown time.Duration
	// RecentWriteWindow is how long reads of a key written by this process
	// bypass the client-side cache (default 3 s).
	RecentWriteWindow time.Duration
	// ClientName is sent with HELLO SETNAME (default "ayzauth").
	ClientName string
	// Logger receives operational messages (fallbacks, breaker changes).
	// Nil discards them.
	Logger *slog.Logger
	// MeterProvider receives the store's lookups (ayzauth.cache.lookups,
	// tier "redis") and breaker transitions; TracerProvider a client span
	// per command sent to the server (SET, DEL, and GETs that bypass the
	// client-side cache; reads through it get none). Nil means the global
	// providers.
	MeterProvider  metric.MeterProvider
	TracerProvider trace.TracerProvider
}

// Stats are counters for observing the store (and testing the breaker).
type Stats struct {
	// Attempts counts calls handed to rueidis (including ones answered
	// from the client-side cache).
	Attempts uint64
	// Failures counts calls that failed because of the backend.
	Failures uint64
	// Rejected counts calls failed fast by the open breaker, without any
	// network attempt.
	Rejected uint64
	// BreakerOpen reports whether the breaker is open now.
	BreakerOpen bool
}

// Store is a cache.Store, cache.Adder and cache.Invalidator on Redis. It is
// safe for concurrent use. Create it with New or NewFromURL and release it
// with Close.
type Store struct {
	client    rueidis.Client
	prefix    string // KeyPrefix + ":"
	opTimeout time.Duration
	localTTL  time.Duration
	csc       bool
	log       *slog.Logger
	br        *breaker
	recent    *recentWrites
	// added holds keys this process filled with a successful Add: their
	// only possible stale local copy is a cached Nil, so reads keep the
	// client-side cache and fall back to the network on a local Nil only.
	added *recentWrites
	tel   *telemetry.Redis

	closed atomic.Bool

	attempts, failures, rejected atomic.Uint64

	cbMu      sync.Mutex
	callbacks atomic.Pointer[[]func([]string)]

	keySeed maphash.Seed
	keys    [keySlots]atomic.Pointer[keyEntry] // see entry
}

var (
	_ cache.Store       = (*Store)(nil)
	_ cache.Adder       = (*Store)(nil)
	_ cache.Invalidator = (*Store)(nil)
)

// New connects to the Redis given by opts.Addrs.
func New(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Addrs) == 0 {
		return nil, errors.New("redis: Options.Addrs is empty")
	}
	co := rueidis.ClientOption{
		InitAddress: opts.Addrs,
		Username:    opts.Username,
		Password:    opts.Password,
		SelectDB:    opts.DB,
		TLSConfig:   opts.TLS,
	}
	co.Sentinel.MasterSet = opts.MasterSet
	return newStore(ctx, co, opts)
}

// NewFromURL connects to the Redis described by url:
//
//	redis://[user:password@]host[:port][/db][?addr=host2:port&...]
//	rediss://...   (TLS)
//	redis://sentinel1:26379?addr=sentinel2:26379&master_set=mymaster
//
// Several seed addresses (?addr=) address a cluster. What the URL states
// wins over Options: Options.Password applies only when the URL has no
// (non-empty) password, Options.Username only when the URL has neither a
// user name nor a password, Options.DB only when the URL selects no
// database (an explicit "/0" or "?db=0" selects database 0), and
// Options.TLS only when the URL is not rediss://. Options.Addrs and
// MasterSet are ignored.
func NewFromURL(ctx context.Context, url string, opts Options) (*Store, error) {
	co, err := clientOptionFromURL(url, opts)
	if err != nil {
		return nil, err
	}
	return newStore(ctx, co, opts)
}

// clientOptionFromURL parses rawURL with rueidis.ParseURL and completes the
// result from opts where the URL says nothing (see NewFromURL). rueidis
// reports an absent database and password as their zero values, so the
// URL itself is consulted to tell "/0" from no database.
func clientOptionFromURL(rawURL string, opts Options) (rueidis.ClientOption, error) {
	co, err := rueidis.ParseURL(rawURL)
	if err != nil {
		return rueidis.ClientOption{}, fmt.Errorf("redis: parse URL: %w", err)
	}
	u, err := neturl.Parse(rawURL) // cannot fail: rueidis.ParseURL parsed it
	if err != nil {
		return rueidis.ClientOption{}, fmt.Errorf("redis: parse URL: %w", err)
	}
	if co.Password == "" {
		if co.Username == "" {
			co.Username = opts.Username
		}
		co.Password = opts.Password
	}
	if !urlSelectsDB(u) {
		co.SelectDB = opts.DB
	}
	switch {
	case co.TLSConfig == nil:
		co.TLSConfig = opts.TLS
	case opts.TLS != nil:
		// rediss://: the URL asks for TLS, Options.TLS says how (a private
		// CA, client certificates). Keep what the URL states: the server
		// name (the host) unless Options.TLS names one, and skip_verify.
		tc := opts.TLS.Clone()
		if tc.ServerName == "" {
			tc.ServerName = co.TLSConfig.ServerName
		}
		tc.InsecureSkipVerify = tc.InsecureSkipVerify || co.TLSConfig.InsecureSkipVerify
		co.TLSConfig = tc
	}
	return co, nil
}

// urlSelectsDB reports whether a URL accepted by rueidis.ParseURL names a
// database: a "db" query parameter, or (except for unix://, whose path is
// the socket) a path "/<n>".
func urlSelectsDB(u *neturl.URL) bool {
	if u.Query().Has("db") {
		return true
	}
	return u.Scheme != "unix" && strings.Trim(u.Path, "/") != ""
}

func newStore(ctx context.Context, co rueidis.ClientOption, opts Options) (*Store, error) {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = DefaultKeyPrefix
	}
	opts.OpTimeout = orDefault(opts.OpTimeout, DefaultOpTimeout)
	opts.LocalTTL = orDefault(opts.LocalTTL, DefaultLocalTTL)
	opts.Cooldown = orDefault(opts.Cooldown, DefaultCooldown)
	opts.RecentWriteWindow = orDefault(opts.RecentWriteWindow, DefaultRecentWriteWindow)
	if opts.FailureThreshold <= 0 {
		opts.FailureThreshold = DefaultFailureThreshold
	}
	if opts.CacheSizeEachConn <= 0 {
		opts.CacheSizeEachConn = DefaultCacheSizeEachConn
	}
	if opts.ClientName == "" {
		opts.ClientName = "ayzauth"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	if co.ConnWriteTimeout <= 0 {
		co.ConnWriteTimeout = orDefault(opts.ConnWriteTimeout, DefaultConnWriteTimeout)
	}
	if co.Dialer.Timeout <= 0 {
		co.Dialer.Timeout = orDefault(opts.DialTimeout, DefaultDialTimeout)
	}
	if co.Dialer.KeepAlive <= 0 {
		// Also the idle PING interval of rueidis: a dead connection is
		// noticed within about 2*KeepAlive + ConnWriteTimeout.
		co.Dialer.KeepAlive = min(max(co.ConnWriteTimeout/2, 100*time.Millisecond), rueidis.DefaultTCPKeepAlive)
	}
	if co.ClientName == "" {
		co.ClientName = opts.ClientName
	}
	if co.RetryDelay == nil {
		co.RetryDelay = retryOnce
	}
	co.CacheSizeEachConn = opts.CacheSizeEachConn
	if opts.DisableClientCache {
		co.DisableCache = true
	}

	s := &Store{
		prefix:    opts.KeyPrefix + ":",
		opTimeout: opts.OpTimeout,
		localTTL:  opts.LocalTTL,
		log:       log,
		br:        &breaker{threshold: opts.FailureThreshold, cooldown: opts.Cooldown},
		recent:    newRecentWrites(opts.RecentWriteWindow),
		added:     newRecentWrites(opts.RecentWriteWindow),
		keySeed:   maphash.MakeSeed(),
		tel:       telemetry.NewRedis(opts.MeterProvider, opts.TracerProvider),
	}
	s.br.onChange = s.tel.Breaker.Changed
	co.OnInvalidations = s.onInvalidations

	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redis: %w: %w", cache.ErrUnavailable, err)
	}
	client, err := rueidis.NewClient(co)
	if err != nil && !co.DisableCache && errors.Is(err, rueidis.ErrNoCache) {
		log.Warn("redis: server refuses client tracking; client-side caching disabled", "err", err)
		co.DisableCache = true
		client, err = rueidis.NewClient(co)
	}
	if err != nil {
		return nil, fmt.Errorf("redis: connect: %w: %w", cache.ErrUnavailable, err)
	}
	s.client = client
	s.csc = !co.DisableCache
	return s, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// ClientSideCaching reports whether reads use server-assisted client-side
// caching (false after a fallback or with Options.DisableClientCache). When
// false, OnInvalidate callbacks are never called.
func (s *Store) ClientSideCaching() bool { return s.csc }

// Mode reports the rueidis client mode ("standalone", "cluster", "sentinel").
func (s *Store) Mode() string { return string(s.client.Mode()) }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Attempts:    s.attempts.Load(),
		Failures:    s.failures.Load(),
		Rejected:    s.rejected.Load(),
		BreakerOpen: s.br.open(),
	}
}

// Client returns the underlying rueidis client, for diagnostics and tests.
// Do not close it.
func (s *Store) Client() rueidis.Client { return s.client }

// Key returns the Redis key used for key (prefix + ":" + key).
func (s *Store) Key(key string) string { return s.prefix + key }

var errOpen = errors.New("redis: circuit breaker open")

// begin checks Close and the breaker and returns a context bounded by
// OpTimeout.
func (s *Store) begin(ctx context.Context) (context.Context, context.CancelFunc, bool, error) {
	probe, err := s.admit()
	if err != nil {
		return nil, nil, false, err
	}
	cctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	return cctx, cancel, probe, nil
}

// admit checks Close and the breaker, and counts the attempt.
func (s *Store) admit() (probe bool, err error) {
	if s.closed.Load() {
		return false, cache.ErrClosed
	}
	ok, probe := s.br.allow()
	if !ok {
		s.rejected.Add(1)
		return false, fmt.Errorf("%w: %w", cache.ErrUnavailable, errOpen)
	}
	s.attempts.Add(1)
	return probe, nil
}

// callCtx bounds a read by OpTimeout (with the caller's earlier deadline
// winning) without paying for a timer when the read never waits: a
// client-side cache hit is answered before rueidis looks at the context.
// The bounded context is made on the first call of Deadline, Done or Err,
// i.e. when rueidis is about to send the command and wait for it.
type callCtx struct {
	parent  context.Context
	timeout time.Duration

	mu     sync.Mutex
	ctx    context.Context // nil until first use
	cancel context.CancelFunc
}

func (c *callCtx) bounded() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithTimeout(c.parent, c.timeout)
	}
	return c.ctx
}

func (c *callCtx) Deadline() (time.Time, bool) { return c.bounded().Deadline() }
func (c *callCtx) Done() <-chan struct{}       { return c.bounded().Done() }
func (c *callCtx) Err() error                  { return c.bounded().Err() }
func (c *callCtx) Value(key any) any           { return c.parent.Value(key) }

// release stops the timer, if the bounded context was made.
func (c *callCtx) release() {
	c.mu.Lock()
	if c.cancel != nil {
		c.cancel()
	}
	c.mu.Unlock()
}

// keySlots is the size of the table of recently read keys (a power of two).
const keySlots = 4096

// keyEntry is what reading a key needs, built once per key: its prefixed
// form and its GET command, pinned so that rueidis does not recycle it and
// every read of the key reuses it (rueidis computes a key's cluster slot, a
// CRC16 over the ~75-byte key, each time a command is built: about a
// quarter of a client-side hit's cost).
type keyEntry struct {
	fk  string
	get rueidis.Cacheable
}

// entry returns the keyEntry of key from a small direct-mapped table (a
// slot holds the last key that hashed to it), building it on a miss.
func (s *Store) entry(key string) *keyEntry {
	i := maphash.String(s.keySeed, key) & (keySlots - 1)
	if e := s.keys[i].Load(); e != nil && len(e.fk) == len(s.prefix)+len(key) && e.fk[len(s.prefix):] == key {
		return e
	}
	fk := s.prefix + key
	e := &keyEntry{fk: fk, get: s.client.B().Get().Key(fk).Cache().Pin()}
	s.keys[i].Store(e)
	return e
}

// fullKey returns KeyPrefix + ":" + key.
func (s *Store) fullKey(key string) string { return s.entry(key).fk }

// end classifies err (nil, rueidis.Nil already handled by the caller),
// feeds the breaker and maps err to the cache errors.
func (s *Store) end(parent context.Context, err error, probe bool) error {
	if err == nil {
		s.br.done(success, probe)
		return nil
	}
	if s.closed.Load() || errors.Is(err, rueidis.ErrClosing) {
		s.br.done(neutral, probe)
		return cache.ErrClosed
	}
	var re *rueidis.RedisError
	switch {
	case parent.Err() != nil || callerDeadlinePassed(parent):
		// The caller gave up; that says nothing about Redis. (rueidis may
		// report the caller's deadline from a socket deadline before the
		// caller's context is marked done.)
		s.br.done(neutral, probe)
	case errors.As(err, &re) && !cannotServe(re):
		// Redis answered (with an error): it is alive.
		s.br.done(success, probe)
	default:
		s.failures.Add(1)
		wasOpen := s.br.open()
		s.br.done(failure, probe)
		if !wasOpen && s.br.open() {
			s.log.Warn("redis: circuit breaker open", "err", err)
		}
	}
	return fmt.Errorf("%w: %w", cache.ErrUnavailable, err)
}

// cannotServe reports whether an error answer means that Redis is up but
// cannot serve the key for now (a cluster without a master for its slot, a
// failover or resharding in progress, a server loading its dataset): for
// the breaker, that is an outage like a dead connection, not a sign of life.
func cannotServe(re *rueidis.RedisError) bool {
	if re.IsClusterDown() || re.IsTryAgain() || re.IsLoading() {
		return true
	}
	msg := re.Error()
	return strings.HasPrefix(msg, "MASTERDOWN") || strings.HasPrefix(msg, "READONLY")
}

// retryOnce is rueidis's RetryDelay: a failed read is retried once, at once
// (a connection found dead after a restart, a cluster slot just moved),
// then the error is reported. rueidis's default retries with backoff until
// the deadline, so every read against a dead server would take OpTimeout
// until the breaker opens.
func retryOnce(attempts int, _ rueidis.Completed, _ error) time.Duration {
	if attempts <= 1 {
		return 0
	}
	return -1
}

func callerDeadlinePassed(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// Get returns the value under key, or an error matching cache.ErrNotFound
// or cache.ErrUnavailable.
//
// The returned slice may alias rueidis's client-side cache memory
// (RedisMessage.AsBytes): callers must not modify it.
func (s *Store) Get(ctx context.Context, key string) ([]byte, error) {
	v, _, local, err := s.get(ctx, key, false)
	if err == nil {
		s.tel.Cache.RedisHit(ctx, local)
	} else {
		recordGet(ctx, s.tel.Cache, local, err)
	}
	return v, err
}

// GetWithTTL is Get that also reports how long the value may be kept by a
// cache layered above this store and kept coherent through OnInvalidate:
// at most the time left before the entry expires in Redis (and the
// client-side cache). It reports 0 when the read was not registered for
// invalidation (client-side caching is off, or this process wrote the key
// within RecentWriteWindow) — such a value must not be cached above, or only
// briefly. The returned slice must not be modified.
func (s *Store) GetWithTTL(ctx context.Context, key string) ([]byte, time.Duration, error) {
	v, ttl, local, err := s.get(ctx, key, true)
	recordGet(ctx, s.tel.Cache, local, err)
	return v, ttl, err
}

func (s *Store) get(ctx context.Context, key string, wantTTL bool) ([]byte, time.Duration, bool, error) {
	probe, err := s.admit()
	if err != nil {
		return nil, 0, false, err
	}
	e := s.entry(key)
	fk := e.fk
	if s.csc && !s.recent.contains(fk) {
		// The hot path: a client-side cache hit makes no network round
		// trip, builds no command, arms no timer and allocates nothing
		// but cctx.
		cctx := &callCtx{parent: ctx, timeout: s.opTimeout}
		res := s.client.DoCache(cctx, e.get, s.localTTL)
		cctx.release()
		v, err := res.AsBytes()
		if rueidis.IsRedisNil(err) && !(res.IsCacheHit() && s.added.contains(fk)) {
			s.br.done(success, probe)
			return nil, 0, res.IsCacheHit(), cache.ErrNotFound
		}
		if rueidis.IsRedisNil(err) {
			// A Nil cached before our own Add: its invalidation may
			// still be on the way (redis/rueidis#534); ask the server.
			return s.getFromServer(ctx, fk, wantTTL, probe)
		}
		if err != nil {
			return nil, 0, false, s.end(ctx, err, probe)
		}
		s.br.done(success, probe)
		var ttl time.Duration
		if wantTTL {
			if pttl := res.CachePTTL(); pttl > 0 {
				ttl = time.Duration(pttl) * time.Millisecond
			}
		}
		return v, ttl, res.IsCacheHit(), nil
	}
	return s.getFromServer(ctx, fk, wantTTL, probe)
}

// getFromServer reads key from the server, bypassing the client-side
// cache.
func (s *Store) getFromServer(ctx context.Context, fk string, wantTTL, probe bool) ([]byte, time.Duration, bool, error) {
	cctx, cancel := context.WithTimeout(ctx, s.opTimeout)
	defer cancel()
	cctx, span := s.tel.Start(cctx, "GET")
	defer span.End()
	if !wantTTL {
		v, err := s.client.Do(cctx, s.client.B().Get().Key(fk).Build()).AsBytes()
		if rueidis.IsRedisNil(err) {
			s.br.done(success, probe)
			return nil, 0, false, cache.ErrNotFound
		}
		if err != nil {
			return nil, 0, false, s.end(ctx, err, probe)
		}
		s.br.done(success, probe)
		return v, 0, false, nil
	}
	// Untracked read: the value is fresh, but no invalidation will come
	// for it, so report ttl 0 ("do not cache above") when tracking is on;
	// with tracking off, report the server TTL so that an upper layer can
	// apply its own short bound.
	rs := s.client.DoMulti(cctx,
		s.client.B().Get().Key(fk).Build(),
		s.client.B().Pttl().Key(fk).Build())
	v, err := rs[0].AsBytes()
	if rueidis.IsRedisNil(err) {
		s.br.done(success, probe)
		return nil, 0, false, cache.ErrNotFound
	}
	if err != nil {
		return nil, 0, false, s.end(ctx, err, probe)
	}
	pttl, err := rs[1].AsInt64()
	if err != nil {
		return nil, 0, false, s.end(ctx, err, probe)
	}
	s.br.done(success, probe)
	var ttl time.Duration
	if !s.csc && pttl > 0 {
		ttl = time.Duration(pttl) * time.Millisecond
	}
	return v, ttl, false, nil
}

// expiry returns the absolute expiry in Unix milliseconds, truncated so the
// entry never outlives ttl, and whether at least 1 ms is left.
func expiry(ttl time.Duration) (int64, bool) {
	if ttl < time.Millisecond {
		return 0, false
	}
	ms := time.Now().Add(ttl).UnixMilli()
	return ms, ms > time.Now().UnixMilli()
}

// Set stores value under key until now+ttl (SET PXAT, millisecond
// precision, never later than now+ttl). With less than 1 ms left it stores
// nothing and deletes any older value instead, so a superseded value is not
// served. value may be retained by rueidis until the command is written:
// do not modify it during the call.
func (s *Store) Set(ctx context.Context, key string, value []byte, ttl time.Duration) (err error) {
	exp, ok := expiry(ttl)
	if !ok {
		return s.Delete(ctx, key)
	}
	ctx, span := s.tel.Start(ctx, "SET")
	defer func() { telemetry.EndRedisSpan(span, err) }()
	cctx, cancel, probe, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	fk := s.prefix + key
	s.recent.add(fk)
	err = s.client.Do(cctx, s.client.B().Set().Key(fk).Value(rueidis.BinaryString(value)).
		PxatMillisecondsTimestamp(exp).Build()).Error()
	s.recent.add(fk) // the window starts when the write is done
	return s.end(ctx, err, probe)
}

// Add stores value under key until now+ttl unless key holds a value
// (SET NX PXAT) and reports whether it stored it. With less than 1 ms left
// it does nothing and reports false.
func (s *Store) Add(ctx context.Context, key string, value []byte, ttl time.Duration) (stored bool, err error) {
	exp, ok := expiry(ttl)
	if !ok {
		return false, nil
	}
	ctx, span := s.tel.Start(ctx, "SET")
	defer func() { telemetry.EndRedisSpan(span, err) }()
	cctx, cancel, probe, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer cancel()
	fk := s.prefix + key
	s.added.add(fk)
	err = s.client.Do(cctx, s.client.B().Set().Key(fk).Value(rueidis.BinaryString(value)).
		Nx().PxatMillisecondsTimestamp(exp).Build()).Error()
	s.added.add(fk) // the window starts when the write is done
	if rueidis.IsRedisNil(err) {
		s.br.done(success, probe)
		return false, nil
	}
	if err := s.end(ctx, err, probe); err != nil {
		return false, err
	}
	return true, nil
}

// Delete removes key (DEL). Deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) (err error) {
	ctx, span := s.tel.Start(ctx, "DEL")
	defer func() { telemetry.EndRedisSpan(span, err) }()
	cctx, cancel, probe, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer cancel()
	fk := s.prefix + key
	s.recent.add(fk)
	err = s.client.Do(cctx, s.client.B().Del().Key(fk).Build()).Error()
	s.recent.add(fk)
	return s.end(ctx, err, probe)
}

// OnInvalidate registers fn, called when Redis reports that keys read by
// this store through the client-side cache changed (keys without the
// prefix), or with nil when every entry must be considered changed (a
// connection was lost or the database flushed). fn runs on a rueidis
// connection goroutine and must not block. Without client-side caching fn
// is never called.
func (s *Store) OnInvalidate(fn func(keys []string)) {
	if fn == nil {
		return
	}
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var fns []func([]string)
	if p := s.callbacks.Load(); p != nil {
		fns = append(fns, *p...)
	}
	fns = append(fns, fn)
	s.callbacks.Store(&fns)
}

func (s *Store) onInvalidations(msgs []rueidis.RedisMessage) {
	p := s.callbacks.Load()
	if p == nil {
		return
	}
	var keys []string
	if msgs != nil {
		keys = make([]string, 0, len(msgs))
		for i := range msgs {
			k, err := msgs[i].ToString()
			if err != nil {
				continue
			}
			if k, ok := strings.CutPrefix(k, s.prefix); ok {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return
		}
	}
	for _, fn := range *p {
		fn(keys)
	}
}

// Close closes the client. Calls after Close return cache.ErrClosed. Close
// is idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.client.Close()
	return nil
}
