//go:build race

package echostytch_test

const raceEnabled = true
