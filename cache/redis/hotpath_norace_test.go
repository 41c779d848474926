//go:build !race

package redis

const perfRace = false
