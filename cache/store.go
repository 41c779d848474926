// Package cache defines the cache.Store interface that session caches
// implement, and a caching verifier.Verifier built on it.
//
// Backends live in sub-packages: cache/memory (in-process, ristretto),
// cache/redis (Redis through rueidis with server-assisted client-side
// caching) and cache/tiered (an L1 store kept coherent with an L2 store).
package cache

import (
	"context"
	"errors"
	"time"
)

// Store is a byte-oriented key-value store with per-entry expiry.
//
// Implementations must be safe for concurrent use, must never keep an entry
// beyond its ttl, and must treat a ttl <= 0 as "do not store" (never as
// "store forever"). Values returned by Get must not be modified by the
// caller; they may alias the store's memory.
type Store interface {
	// Get returns the value stored under key, or an error matching
	// ErrNotFound when there is none (or it has expired).
	Get(ctx context.Context, key string) ([]byte, error)
	// Set stores value under key for ttl. A ttl <= 0 stores nothing.
	Set(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// Adder is implemented by stores that can write a value only when no value
// is stored under the key (Redis SET NX). The caching verifier fills the
// cache with Add when it can, so that a fill that was in flight during a
// revocation cannot overwrite the revocation's tombstone.
type Adder interface {
	// Add stores value under key for ttl unless key holds a value. It
	// reports whether it stored the value.
	Add(ctx context.Context, key string, value []byte, ttl time.Duration) (bool, error)
}

// Invalidator is implemented by stores that learn when entries change
// elsewhere (for instance Redis client-side caching invalidation pushes).
type Invalidator interface {
	// OnInvalidate registers fn, called with the keys that changed in the
	// store by another writer, or with nil when every entry must be
	// considered changed (a lost connection, a flush). fn must not block.
	OnInvalidate(fn func(keys []string))
}

// Errors returned by stores. Match them with errors.Is.
var (
	// ErrNotFound: no live entry under the key.
	ErrNotFound = errors.New("cache: not found")
	// ErrUnavailable: the backend could not answer (down, timed out,
	// circuit open). Callers carry on without the cache.
	ErrUnavailable = errors.New("cache: backend unavailable")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("cache: store closed")
)
