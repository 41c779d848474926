package verifier_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Stytch verifier and PolicyCache a test starts must be closed: the
// JWKS refresher and the policy refresher are the package's goroutines.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
