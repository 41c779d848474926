package redis_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ayzauth/ayzauth/cache"
	"github.com/ayzauth/ayzauth/cache/redis"
)

func Example() {
	ctx := context.Background()
	store, err := redis.NewFromURL(ctx, "redis://"+redis.SharedAddr()+"/0", redis.Options{
		KeyPrefix: "example",
		OpTimeout: 100 * time.Millisecond,
	})
	if err != nil {
		fmt.Println("redis unavailable:", err)
		return
	}
	defer store.Close()

	_ = store.Set(ctx, "session-hash", []byte("verified session"), 5*time.Minute)
	v, err := store.Get(ctx, "session-hash") // must not be modified
	fmt.Println(string(v), err)

	_ = store.Delete(ctx, "session-hash")
	_, err = store.Get(ctx, "session-hash")
	fmt.Println(errors.Is(err, cache.ErrNotFound))
	// Output:
	// verified session <nil>
	// true
}
