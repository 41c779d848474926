package echostytch_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/ayzauth/ayzauth/echostytch"
)

// FuzzLoadSettings feeds arbitrary values for the STYTCH_* variables through
// LoadSettings (a MapLookuper): it never panics; every error is a
// *SettingError naming a variable; loaded settings respect the documented
// bounds; neither the secret nor the Redis password ever appears in an
// error or in the printed settings.
func FuzzLoadSettings(f *testing.F) {
	f.Add("project-test-11111111-2222-3333-4444-555555555555", "secret-test-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123", "", "redis://u:hunter2hunter2@127.0.0.1:6380/1", "300", "10", "3", "INFO", "")
	f.Add("project-live-x", "secret-test-mismatchmismatch", "test", "", "2.5", "0.5", "0", "debug", "tiered")
	f.Add("project-test-x", "secret-test-xxxxxxxxxxxx", "", "rediss://:pw@h:1?addr=h2:2", "5m", "1m", "10", "WARNING", "redis")
	f.Add("project-test-x", "s", "", "unix:///tmp/r.sock", "-1", "NaN", "11", "TRACE", "memcached")
	f.Add("project-test-x", "s\x00", "prod", "http://x", "1e400", "+Inf", "-0", "", "MEMORY")
	f.Add("", "", "", "redis://%zz", "0", "0s", "abc", "\xff", "redis")
	f.Fuzz(func(t *testing.T, project, secret, environment, redisURL, ttl, timeout, retries, level, backend string) {
		env := map[string]string{
			"STYTCH_PROJECT_ID": project, "STYTCH_SECRET": secret, "STYTCH_ENVIRONMENT": environment,
			"STYTCH_REDIS_URL": redisURL, "STYTCH_CACHE_TTL": ttl, "STYTCH_REQUEST_TIMEOUT": timeout,
			"STYTCH_MAX_RETRIES": retries, "STYTCH_LOG_LEVEL": level, "STYTCH_CACHE_BACKEND": backend,
			"STYTCH_REDIS_PASSWORD": "redis-password-" + secret,
		}
		s, err := echostytch.LoadSettings(context.Background(), envconfig.MapLookuper(env))
		// A secret is "findable" only if it is long and not part of
		// another input that an error may legitimately quote.
		findable := len(strings.TrimSpace(secret)) >= 8
		for k, v := range env {
			if k != "STYTCH_SECRET" && k != "STYTCH_REDIS_PASSWORD" && strings.Contains(v, strings.TrimSpace(secret)) {
				findable = false
			}
		}
		if err != nil {
			if s != nil {
				t.Fatal("settings with an error")
			}
			var se *echostytch.SettingError
			if !errors.As(err, &se) && !strings.Contains(err.Error(), "reading the environment") {
				t.Fatalf("error is not a SettingError: %v", err)
			}
			if se != nil && !strings.HasPrefix(se.Variable, "STYTCH_") && se.Variable != "REDIS_URL" {
				t.Fatalf("error names %q", se.Variable)
			}
			if findable && strings.Contains(err.Error(), strings.TrimSpace(secret)) {
				t.Fatalf("error reveals the secret: %v", err)
			}
			return
		}
		if s.ProjectID == "" || s.Secret == "" {
			t.Fatal("loaded without credentials")
		}
		if s.CacheTTL <= 0 || s.CacheTTL > 24*time.Hour {
			t.Fatalf("CacheTTL %v out of bounds", s.CacheTTL)
		}
		if s.RequestTimeout <= 0 || s.RequestTimeout > 5*time.Minute {
			t.Fatalf("RequestTimeout %v out of bounds", s.RequestTimeout)
		}
		if s.MaxRetries < 0 || s.MaxRetries > 10 {
			t.Fatalf("MaxRetries %d out of bounds", s.MaxRetries)
		}
		switch s.CacheBackend {
		case echostytch.CacheMemory:
		case echostytch.CacheRedis, echostytch.CacheTiered:
			if s.RedisURL == "" {
				t.Fatal("a Redis backend without a URL")
			}
		default:
			t.Fatalf("backend %q", s.CacheBackend)
		}
		if s.Environment != echostytch.EnvironmentTest && s.Environment != echostytch.EnvironmentLive {
			t.Fatalf("environment %q", s.Environment)
		}
		if findable {
			for _, out := range []string{s.String(), fmt.Sprintf("%v", s), fmt.Sprintf("%+v", *s), fmt.Sprintf("%#v", *s)} {
				if strings.Contains(out, strings.TrimSpace(secret)) {
					t.Fatalf("printed settings reveal the secret: %s", out)
				}
			}
			if b, err := s.MarshalJSON(); err != nil || strings.Contains(string(b), strings.TrimSpace(secret)) {
				t.Fatalf("JSON reveals the secret: %s %v", b, err)
			}
		}
	})
}
