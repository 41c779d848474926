package cache

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/verifier"
)

func memoHash(i int) [32]byte { return sha256.Sum256([]byte(strconv.Itoa(i))) }

func TestMemoTable(t *testing.T) {
	m := newMemoTable(10)
	require.Len(t, m.sets, 4) // 4 sets x 4 ways >= 10
	h := memoHash(1)
	require.Nil(t, m.get(&h))
	e := &memoEntry{hash: h, key: "k1"}
	m.put(e)
	require.Same(t, e, m.get(&h))
	e2 := &memoEntry{hash: h, key: "k1-again"}
	m.put(e2) // replaces the same token's entry
	require.Same(t, e2, m.get(&h))
	n := 0
	for i := range m.set(&h).ways {
		if m.set(&h).ways[i].Load() != nil {
			n++
		}
	}
	require.Equal(t, 1, n)
	m.del(&h)
	require.Nil(t, m.get(&h))

	// Bounded: never more entries than ways, and the last one put is there.
	for i := range 1000 {
		h := memoHash(i)
		m.put(&memoEntry{hash: h})
		require.NotNil(t, m.get(&h))
	}
	n = 0
	for i := range m.sets {
		for j := range m.sets[i].ways {
			if m.sets[i].ways[j].Load() != nil {
				n++
			}
		}
	}
	require.Equal(t, len(m.sets)*memoWays, n)
	m.clear()
	for i := range 1000 {
		h := memoHash(i)
		require.Nil(t, m.get(&h))
	}
}

func TestMemoTableConcurrent(t *testing.T) {
	m := newMemoTable(64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5000 {
				h := memoHash(i % 200)
				if e := m.get(&h); e != nil && e.hash != h {
					t.Error("entry of another hash")
					return
				}
				switch (i + g) % 3 {
				case 0:
					m.put(&memoEntry{hash: h, sess: &verifier.Session{}})
				case 1:
					m.del(&h)
				}
			}
		}()
	}
	wg.Wait()
}

func TestWallClock(t *testing.T) {
	var c wallClock
	for range 3 {
		before := time.Now().UnixMilli()
		got := c.nowMillis()
		after := time.Now().UnixMilli()
		require.GreaterOrEqual(t, got, before-1)
		require.LessOrEqual(t, got, after+1)
	}
	// A base older than a second is replaced.
	old := time.Now().Add(-2 * time.Second)
	c.base.Store(&clockBase{t: old, ms: old.UnixMilli() - 60_000}) // and wrong
	before := time.Now().UnixMilli()
	got := c.nowMillis()
	require.GreaterOrEqual(t, got, before-1)
	require.NotEqual(t, old, c.base.Load().t)
}
