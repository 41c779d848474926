package tiered_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ayzauth/ayzauth/cache/memory"
	"github.com/ayzauth/ayzauth/cache/redis"
	"github.com/ayzauth/ayzauth/cache/tiered"
)

func Example() {
	ctx := context.Background()
	l1, err := memory.New(memory.Options{MaxCost: 16 << 20})
	if err != nil {
		panic(err)
	}
	defer l1.Close()
	l2, err := redis.New(ctx, redis.Options{Addrs: []string{sharedAddr}, KeyPrefix: "example"})
	if err != nil {
		fmt.Println("redis unavailable:", err)
		return
	}
	defer l2.Close()
	store, err := tiered.New(l1, l2, tiered.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	_ = store.Set(ctx, "session-hash", []byte("verified session"), 5*time.Minute)
	v, err := store.Get(ctx, "session-hash")
	fmt.Println(string(v), err)
	// Output:
	// verified session <nil>
}
