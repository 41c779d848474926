package echostytch_test

import (
	"testing"

	"go.uber.org/goleak"
)

// rueidis goroutines that sleep past Client.Close and end by themselves:
// the cluster-mode probe's retry timer (DelayDo) and, after a cluster
// topology refresh, the delayed close of removed connections (_refresh).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakIgnores...)
}
