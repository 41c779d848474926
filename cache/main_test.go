package cache_test

import (
	"testing"

	"go.uber.org/goleak"
)

// rueidis probes for cluster mode at connect; the probe's retry timer
// (DelayDo) sleeps on after Close and then exits on its own.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/redis/rueidis.(*call).DelayDo.func1"))
}
