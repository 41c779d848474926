package memory_test

import (
	"context"
	"fmt"
	"time"

	"github.com/ayzauth/ayzauth/cache/memory"
)

func Example() {
	store, err := memory.New(memory.Options{MaxCost: 32 << 20})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	ctx := context.Background()
	_ = store.Set(ctx, "session-hash", []byte("verified session"), 5*time.Minute)
	v, err := store.Get(ctx, "session-hash")
	fmt.Println(string(v), err)

	_ = store.Set(ctx, "other", []byte("x"), 0) // ttl <= 0: not stored
	_, err = store.Get(ctx, "other")
	fmt.Println(err)
	// Output:
	// verified session <nil>
	// cache: not found
}
