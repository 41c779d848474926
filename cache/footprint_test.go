package cache_test

import (
	"context"
	"fmt"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/internal/redistest"
	"github.com/ayzauth/ayzauth/verifier"
	"github.com/ayzauth/ayzauth/verifier/stytchtest"
)

// These benchmarks measure memory, not time: they do their work once per
// call whatever b.N (make bench runs them with -benchtime=1x). They report custom metrics that
// internal/cmd/benchreport lists.

// cloneVerifier answers, for any token, a copy of a real session (one that
// the Stytch verifier built from the emulator's answer to an opaque token,
// with Stytch's raw objects) with IDs derived from the token, instantly.
type cloneVerifier struct{ proto *verifier.Session }

func (c cloneVerifier) Verify(_ context.Context, token string) (*verifier.Session, error) {
	s := *c.proto
	s.MemberID = "member-test-" + token[len(token)-12:]
	s.SessionID = "member-session-test-" + token[len(token)-12:]
	return &s, nil
}

// realSession verifies an opaque token against the emulator and returns
// the session as the Stytch verifier builds it.
func realSession(b *testing.B) *verifier.Session {
	b.Helper()
	emu := stytchtest.New()
	b.Cleanup(emu.Close)
	org := emu.CreateOrganization(stytchtest.OrganizationParams{Name: "Acme Corporation", Slug: "acme"})
	m, err := emu.CreateMember(org.ID, stytchtest.MemberParams{Email: "ada.lovelace@acme.test", Name: "Ada Lovelace"})
	if err != nil {
		b.Fatal(err)
	}
	sess, err := emu.CreateSession(m.ID, stytchtest.SessionParams{Duration: 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	sv, err := verifier.NewStytch(verifier.Config{ProjectID: emu.ProjectID(), Secret: emu.Secret(), BaseURL: emu.URL()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sv.Close() })
	s, err := sv.Verify(context.Background(), sess.Token)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func footprintToken(i int) string { return fmt.Sprintf("footprint-token-0000000000000000%012d", i) }

func heapInUse() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// recordingStore remembers the size of the last value written.
type recordingStore struct {
	cache.Store
	last int
}

func (r *recordingStore) Set(ctx context.Context, k string, v []byte, ttl time.Duration) error {
	r.last = len(v)
	return r.Store.Set(ctx, k, v, ttl)
}

// BenchmarkSessionFootprint reports the bytes one cached session costs:
//
//   - value-B: the stored value (header, HMAC tag, the session's JSON);
//   - process-B/session: the Go heap of a caching verifier over the memory
//     store, per session (store entry + key + decoded session in the memo);
//   - redis-B/session: Redis's MEMORY USAGE of one key, and
//     redis-used-B/session its used_memory growth per key over 20,000 keys;
//   - csc-B/session: the Go heap of the Redis store's client-side cache
//     per session read (the copy a Redis-backed instance keeps).
func BenchmarkSessionFootprint(b *testing.B) {
	proto := realSession(b)
	ctx := context.Background()
	const n = 20_000

	mem, err := memory.New(memory.Options{MaxCost: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer mem.Close()
	rec := &recordingStore{Store: mem}
	cv, err := cache.NewVerifier(cloneVerifier{proto}, cache.VerifierConfig{Store: rec, Secret: []byte("footprint-secret"), Namespace: "project-test-x"})
	if err != nil {
		b.Fatal(err)
	}
	defer cv.Close()
	before := heapInUse()
	for i := range n {
		if _, err := cv.Verify(ctx, footprintToken(i)); err != nil {
			b.Fatal(err)
		}
	}
	mem.Wait()
	after := heapInUse()
	b.ReportMetric(float64(rec.last), "value-B")
	b.ReportMetric(float64(after-before)/n, "process-B/session")
	runtime.KeepAlive(cv)

	srv := redistest.Start(b)
	rs, err := redis.New(ctx, redis.Options{Addrs: []string{srv.Addr()}, CacheSizeEachConn: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	rv, err := cache.NewVerifier(cloneVerifier{proto}, cache.VerifierConfig{Store: rs, Secret: []byte("footprint-secret"), Namespace: "project-test-x"})
	if err != nil {
		b.Fatal(err)
	}
	defer rv.Close()
	usedBefore := usedMemory(b, srv)
	for i := range n {
		if _, err := rv.Verify(ctx, footprintToken(i)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(usedMemory(b, srv)-usedBefore)/n, "redis-used-B/session")
	keys, err := redistest.Do(srv.Addr(), "KEYS", "*")
	if err != nil {
		b.Fatal(err)
	}
	usage, err := redistest.Do(srv.Addr(), "MEMORY", "USAGE", fmt.Sprint(keys.([]any)[0]), "SAMPLES", "0")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(usage.(int64)), "redis-B/session")

	// Another instance reads every key once through its client-side
	// cache (after the own-write bypass window of the filling one).
	reader, err := redis.New(ctx, redis.Options{Addrs: []string{srv.Addr()}, CacheSizeEachConn: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	defer reader.Close()
	var names []string
	for _, k := range keys.([]any) {
		name, _ := k.(string)
		names = append(names, name[len(redis.DefaultKeyPrefix)+1:])
	}
	cscBefore := heapInUse()
	for _, k := range names {
		if _, err := reader.Get(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(heapInUse()-cscBefore)/float64(len(names)), "csc-B/session")
	runtime.KeepAlive(reader)
	runtime.KeepAlive(names)
}

func usedMemory(b *testing.B, srv *redistest.Server) float64 {
	v, err := strconv.ParseFloat(srv.Info("memory")["used_memory"], 64)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// BenchmarkMillionSessions fills the in-process store (cache/memory) with
// one million sessions' values under a MaxCost sized for them, then with a
// second million, and reports how many it holds and the Go heap it uses
// against the configured bound (heap-of-bound: heap / MaxCost).
func BenchmarkMillionSessions(b *testing.B) {
	const n = 1_000_000
	proto := realSession(b)
	// Values as the caching verifier stores them (same size for all).
	cv := &recordingStore{Store: nopStore{}}
	v, err := cache.NewVerifier(cloneVerifier{proto}, cache.VerifierConfig{Store: cv, Secret: []byte("s"), Namespace: "p"})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), footprintToken(0)); err != nil {
		b.Fatal(err)
	}
	_ = v.Close()
	value := make([]byte, cv.last)
	bound := int64(n) * int64(len(value)+memory.EntryOverhead)

	base := heapInUse()
	store, err := memory.New(memory.Options{MaxCost: bound, ExpectedItems: n})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	ctx := context.Background()
	key := func(i int) string { return fmt.Sprintf("s:%064d", i) }
	fill := func(from, to int) {
		for i := from; i < to; i++ {
			_ = store.Set(ctx, key(i), value, time.Hour)
		}
		store.Wait()
	}
	held := func(from, to int) int {
		c := 0
		for i := from; i < to; i++ {
			if _, err := store.Get(ctx, key(i)); err == nil {
				c++
			}
		}
		return c
	}
	fill(0, n)
	heap1 := heapInUse() - base
	b.ReportMetric(float64(held(0, n)), "held-after-1M")
	b.ReportMetric(float64(heap1)/float64(bound), "heap-of-bound-after-1M")
	b.ReportMetric(float64(heap1)/n, "heap-B/session")
	fill(n, 2*n)
	heap2 := heapInUse() - base
	b.ReportMetric(float64(held(0, 2*n)), "held-after-2M")
	b.ReportMetric(float64(heap2)/float64(bound), "heap-of-bound-after-2M")
	b.ReportMetric(float64(bound), "bound-B")
	runtime.KeepAlive(store)
}

// nopStore stores nothing.
type nopStore struct{}

func (nopStore) Get(context.Context, string) ([]byte, error)              { return nil, cache.ErrNotFound }
func (nopStore) Set(context.Context, string, []byte, time.Duration) error { return nil }
func (nopStore) Delete(context.Context, string) error                     { return nil }
