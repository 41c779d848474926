package memory_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/dgraph-io/ristretto/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newStore(t testing.TB, opts memory.Options) *memory.Store {
	t.Helper()
	s, err := memory.New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestReadYourWrites(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	for i := range 1000 {
		k := "k" + strconv.Itoa(i)
		require.NoError(t, s.Set(ctx, k, []byte(k), time.Minute))
		v, err := s.Get(ctx, k)
		require.NoError(t, err, "Get right after Set must hit (i=%d)", i)
		require.Equal(t, k, string(v))
	}
}

func TestSetCopiesValue(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	buf := []byte("hello")
	require.NoError(t, s.Set(ctx, "k", buf, time.Minute))
	buf[0] = 'J'
	v, err := s.Get(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, "hello", string(v))
}

func TestNonPositiveTTLStoresNothing(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	for _, ttl := range []time.Duration{0, -1, -time.Hour} {
		require.NoError(t, s.Set(ctx, "zero", []byte("v"), ttl))
		s.Wait()
		_, err := s.Get(ctx, "zero")
		require.ErrorIs(t, err, cache.ErrNotFound, "ttl %v", ttl)
		ok, err := s.Add(ctx, "zero", []byte("v"), ttl)
		require.NoError(t, err)
		require.False(t, ok)
		s.Wait()
		_, err = s.Get(ctx, "zero")
		require.ErrorIs(t, err, cache.ErrNotFound, "ttl %v", ttl)
	}
	// A ttl <= 0 also removes an older entry: the superseded value must not
	// be served.
	require.NoError(t, s.Set(ctx, "k", []byte("old"), time.Minute))
	require.NoError(t, s.Set(ctx, "k", []byte("new"), 0))
	_, err := s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)
}

func TestExpiry(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), 300*time.Millisecond))
	d, err := s.TTL(ctx, "k")
	require.NoError(t, err)
	assert.LessOrEqual(t, d, 300*time.Millisecond)
	assert.Greater(t, d, time.Duration(0))
	deadline := time.Now().Add(300 * time.Millisecond)
	require.Eventually(t, func() bool {
		_, err := s.Get(ctx, "k")
		if err == nil {
			// Never served past its ttl.
			require.False(t, time.Now().After(deadline.Add(5*time.Millisecond)))
		}
		return errors.Is(err, cache.ErrNotFound)
	}, 2*time.Second, 10*time.Millisecond)
	_, err = s.TTL(ctx, "k")
	require.ErrorIs(t, err, cache.ErrNotFound)
}

func TestAdd(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	ok, err := s.Add(ctx, "k", []byte("first"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.Add(ctx, "k", []byte("second"), time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
	v, err := s.Get(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, "first", string(v))
	require.NoError(t, s.Delete(ctx, "k"))
	ok, err = s.Add(ctx, "k", []byte("third"), time.Minute)
	require.NoError(t, err)
	require.True(t, ok)
}

func TestAddConcurrentOnlyOneWins(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	for round := range 20 {
		key := "race" + strconv.Itoa(round)
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := s.Add(ctx, key, []byte{byte(g)}, time.Minute)
				assert.NoError(t, err)
				if ok {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		require.Equal(t, 1, wins)
	}
}

func TestDeleteImmediate(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	for i := range 500 {
		k := "k" + strconv.Itoa(i)
		require.NoError(t, s.Set(ctx, k, []byte("v"), time.Minute))
		require.NoError(t, s.Delete(ctx, k))
		_, err := s.Get(ctx, k)
		require.ErrorIs(t, err, cache.ErrNotFound)
	}
	require.NoError(t, s.Delete(ctx, "missing"))
}

func TestTooLargeRejectedNotError(t *testing.T) {
	s := newStore(t, memory.Options{MaxCost: 1024})
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "big", make([]byte, 2048), time.Minute))
	_, err := s.Get(ctx, "big")
	require.ErrorIs(t, err, cache.ErrNotFound)
	ok, err := s.Add(ctx, "big", make([]byte, 2048), time.Minute)
	require.NoError(t, err)
	require.False(t, ok)
}

// TestCostIsBytes documents the IgnoreInternalCost choice: with a 100 KiB
// budget and 100-byte values, the number of resident entries is close to
// MaxCost/(len+EntryOverhead), not cut down by hidden per-item costs.
func TestCostIsBytes(t *testing.T) {
	const maxCost = 100 << 10
	s := newStore(t, memory.Options{MaxCost: maxCost, ExpectedItems: 1000, Metrics: true})
	ctx := context.Background()
	val := make([]byte, 100)
	for i := range 2000 {
		require.NoError(t, s.Set(ctx, "k"+strconv.Itoa(i), val, time.Minute))
	}
	s.Wait()
	resident := 0
	for i := range 2000 {
		if _, err := s.Get(ctx, "k"+strconv.Itoa(i)); err == nil {
			resident++
		}
	}
	limit := maxCost / (100 + memory.EntryOverhead)
	assert.LessOrEqual(t, resident, limit)
	assert.Greater(t, resident, limit/2, "resident=%d limit=%d", resident, limit)
	m := s.Metrics()
	assert.NotZero(t, m.KeysAdded)
	assert.NotZero(t, m.Hits)
	assert.LessOrEqual(t, m.CostAdded-m.CostEvicted, uint64(maxCost))
}

func TestMetricsDisabledIsZero(t *testing.T) {
	s := newStore(t, memory.Options{})
	_, _ = s.Get(context.Background(), "x")
	assert.Equal(t, memory.Metrics{}, s.Metrics())
}

func TestNewRejectsNegative(t *testing.T) {
	_, err := memory.New(memory.Options{MaxCost: -1})
	require.Error(t, err)
}

func TestClosed(t *testing.T) {
	s, err := memory.New(memory.Options{})
	require.NoError(t, err)
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.Get(ctx, "k")
	require.ErrorIs(t, err, cache.ErrClosed)
	require.ErrorIs(t, s.Set(ctx, "k", []byte("v"), time.Minute), cache.ErrClosed)
	require.ErrorIs(t, s.Delete(ctx, "k"), cache.ErrClosed)
	_, err = s.Add(ctx, "k", []byte("v"), time.Minute)
	require.ErrorIs(t, err, cache.ErrClosed)
	_, err = s.TTL(ctx, "k")
	require.ErrorIs(t, err, cache.ErrClosed)
	s.Wait()
	assert.Equal(t, memory.Metrics{}, s.Metrics())
}

// TestCloseRacesWrites: ristretto alone panics ("send on closed channel")
// when Close races Set/Del; the Store must not.
func TestCloseRacesWrites(t *testing.T) {
	ctx := context.Background()
	for trial := range 10 {
		s, err := memory.New(memory.Options{MaxCost: 1 << 20})
		require.NoError(t, err)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for i := 0; ; i++ {
					k := fmt.Sprintf("%d-%d-%d", trial, g, i%100)
					var err error
					switch i % 4 {
					case 0:
						err = s.Set(ctx, k, []byte("v"), time.Minute)
					case 1:
						err = s.Delete(ctx, k)
					case 2:
						_, err = s.Get(ctx, k)
					case 3:
						_, err = s.Add(ctx, k, []byte("v"), time.Minute)
					}
					if errors.Is(err, cache.ErrClosed) {
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(5 * time.Millisecond)
		require.NoError(t, s.Close())
		wg.Wait()
	}
}

func TestConcurrentUse(t *testing.T) {
	s := newStore(t, memory.Options{Metrics: true})
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := strconv.Itoa(i % 50)
				switch (i + g) % 3 {
				case 0:
					assert.NoError(t, s.Set(ctx, k, []byte(k), time.Minute))
				case 1:
					if v, err := s.Get(ctx, k); err == nil {
						assert.Equal(t, k, string(v))
					}
				case 2:
					assert.NoError(t, s.Delete(ctx, k))
				}
			}
		}()
	}
	wg.Wait()
}

func TestGetDoesNotAllocate(t *testing.T) {
	s := newStore(t, memory.Options{})
	ctx := context.Background()
	require.NoError(t, s.Set(ctx, "k", []byte("v"), time.Minute))
	allocs := testing.AllocsPerRun(1000, func() {
		_, _ = s.Get(ctx, "k")
	})
	assert.Zero(t, allocs)
}

func BenchmarkGetHit(b *testing.B) {
	s := newStore(b, memory.Options{})
	ctx := context.Background()
	require.NoError(b, s.Set(ctx, "session-key-0123456789abcdef", make([]byte, 400), time.Hour))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := s.Get(ctx, "session-key-0123456789abcdef"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetHitParallel(b *testing.B) {
	s := newStore(b, memory.Options{})
	ctx := context.Background()
	require.NoError(b, s.Set(ctx, "session-key-0123456789abcdef", make([]byte, 400), time.Hour))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Get(ctx, "session-key-0123456789abcdef"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkGetMiss(b *testing.B) {
	s := newStore(b, memory.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = s.Get(ctx, "absent")
	}
}

// BenchmarkSet measures Set including the Wait that gives read-your-writes.
func BenchmarkSet(b *testing.B) {
	s := newStore(b, memory.Options{})
	ctx := context.Background()
	val := make([]byte, 400)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		_ = s.Set(ctx, keys[i%len(keys)], val, time.Hour)
		i++
	}
}

// BenchmarkRistrettoSetNoWait is the baseline for BenchmarkSet: ristretto's
// SetWithTTL without the Wait that gives read-your-writes.
func BenchmarkRistrettoSetNoWait(b *testing.B) {
	c, err := ristretto.NewCache(&ristretto.Config[string, []byte]{
		NumCounters: 1 << 20, MaxCost: 64 << 20, BufferItems: 64, IgnoreInternalCost: true,
	})
	require.NoError(b, err)
	defer c.Close()
	val := make([]byte, 400)
	keys := make([]string, 4096)
	for i := range keys {
		keys[i] = "k" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		v := make([]byte, len(val))
		copy(v, val)
		c.SetWithTTL(keys[i%len(keys)], v, int64(len(v))+memory.EntryOverhead, time.Hour)
		i++
	}
}
