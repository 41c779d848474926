package echostytch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ayzauth/ayzauth/echostytch"
)

const testProject = "project-test-00000000-0000-0000-0000-000000000000"

func load(t *testing.T, env map[string]string) (*echostytch.Settings, error) {
	t.Helper()
	m := map[string]string{"STYTCH_PROJECT_ID": testProject, "STYTCH_SECRET": secretWord}
	for k, v := range env {
		if v == "<unset>" {
			delete(m, k)
			continue
		}
		m[k] = v
	}
	return echostytch.LoadSettings(context.Background(), envconfig.MapLookuper(m))
}

func TestSettingsDefaults(t *testing.T) {
	s, err := load(t, nil)
	require.NoError(t, err)
	assert.Equal(t, echostytch.Settings{
		ProjectID:      testProject,
		Secret:         secretWord,
		Environment:    "test",
		BaseURL:        "https://test.stytch.com",
		CacheBackend:   "memory",
		CacheTTL:       300 * time.Second,
		CachePrefix:    "ayz_auth",
		LogLevel:       slog.LevelInfo,
		RequestTimeout: 10 * time.Second,
		MaxRetries:     3,
	}, *s)
}

func TestSettingsEachVariable(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, s *echostytch.Settings)
	}{
		{"live project", map[string]string{"STYTCH_PROJECT_ID": "project-live-abc", "STYTCH_SECRET": "secret-live-x"},
			func(t *testing.T, s *echostytch.Settings) {
				assert.Equal(t, "live", s.Environment)
				assert.Equal(t, "https://api.stytch.com", s.BaseURL)
			}},
		{"explicit matching environment", map[string]string{"STYTCH_ENVIRONMENT": "TEST"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "test", s.Environment) }},
		{"base URL", map[string]string{"STYTCH_BASE_URL": "http://127.0.0.1:9999/"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "http://127.0.0.1:9999", s.BaseURL) }},
		{"redis URL selects redis", map[string]string{"STYTCH_REDIS_URL": "redis://localhost:6379/2"},
			func(t *testing.T, s *echostytch.Settings) {
				assert.Equal(t, "redis://localhost:6379/2", s.RedisURL)
				assert.Equal(t, "redis", s.CacheBackend)
			}},
		{"REDIS_URL fallback", map[string]string{"REDIS_URL": "rediss://cache:6380"},
			func(t *testing.T, s *echostytch.Settings) {
				assert.Equal(t, "rediss://cache:6380", s.RedisURL)
				assert.Equal(t, "redis", s.CacheBackend)
			}},
		{"STYTCH_REDIS_URL wins over REDIS_URL", map[string]string{"REDIS_URL": "redis://a:1", "STYTCH_REDIS_URL": "redis://b:2"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "redis://b:2", s.RedisURL) }},
		{"empty STYTCH_REDIS_URL falls back", map[string]string{"REDIS_URL": "redis://a:1", "STYTCH_REDIS_URL": ""},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "redis://a:1", s.RedisURL) }},
		{"cluster seeds", map[string]string{"STYTCH_REDIS_URL": "redis://?addr=h1:7001&addr=h2:7002"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "redis", s.CacheBackend) }},
		{"redis password, db, ssl", map[string]string{"STYTCH_REDIS_PASSWORD": "pw", "STYTCH_REDIS_DB": "3", "STYTCH_REDIS_SSL": "yes"},
			func(t *testing.T, s *echostytch.Settings) {
				assert.Equal(t, "pw", s.RedisPassword)
				assert.Equal(t, 3, s.RedisDB)
				assert.True(t, s.RedisSSL)
			}},
		{"tiered backend", map[string]string{"STYTCH_CACHE_BACKEND": "Tiered", "REDIS_URL": "redis://x"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "tiered", s.CacheBackend) }},
		{"memory backend despite redis", map[string]string{"STYTCH_CACHE_BACKEND": "memory", "REDIS_URL": "redis://x"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "memory", s.CacheBackend) }},
		{"TTL seconds", map[string]string{"STYTCH_CACHE_TTL": "60"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, time.Minute, s.CacheTTL) }},
		{"TTL fraction", map[string]string{"STYTCH_CACHE_TTL": "2.5"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, 2500*time.Millisecond, s.CacheTTL) }},
		{"TTL duration", map[string]string{"STYTCH_CACHE_TTL": "5m"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, 5*time.Minute, s.CacheTTL) }},
		{"prefix", map[string]string{"STYTCH_CACHE_PREFIX": "myapp"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, "myapp", s.CachePrefix) }},
		{"log level", map[string]string{"STYTCH_LOG_LEVEL": "debug"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, slog.LevelDebug, s.LogLevel) }},
		{"log level WARNING", map[string]string{"STYTCH_LOG_LEVEL": "WARNING"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, slog.LevelWarn, s.LogLevel) }},
		{"log level ERROR", map[string]string{"STYTCH_LOG_LEVEL": "ERROR"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, slog.LevelError, s.LogLevel) }},
		{"sensitive data", map[string]string{"STYTCH_LOG_SENSITIVE_DATA": "true"},
			func(t *testing.T, s *echostytch.Settings) { assert.True(t, s.LogSensitiveData) }},
		{"request timeout fraction", map[string]string{"STYTCH_REQUEST_TIMEOUT": "0.5"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, 500*time.Millisecond, s.RequestTimeout) }},
		{"request timeout duration", map[string]string{"STYTCH_REQUEST_TIMEOUT": "1500ms"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, 1500*time.Millisecond, s.RequestTimeout) }},
		{"max retries", map[string]string{"STYTCH_MAX_RETRIES": "0"},
			func(t *testing.T, s *echostytch.Settings) { assert.Equal(t, 0, s.MaxRetries) }},
		{"empty values are defaults", map[string]string{"STYTCH_CACHE_TTL": "", "STYTCH_LOG_LEVEL": " ", "STYTCH_MAX_RETRIES": ""},
			func(t *testing.T, s *echostytch.Settings) {
				assert.Equal(t, 300*time.Second, s.CacheTTL)
				assert.Equal(t, slog.LevelInfo, s.LogLevel)
				assert.Equal(t, 3, s.MaxRetries)
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := load(t, tc.env)
			require.NoError(t, err)
			tc.check(t, s)
		})
	}
}

func TestSettingsBadValues(t *testing.T) {
	tests := []struct {
		name     string
		env      map[string]string
		variable string
	}{
		{"missing project", map[string]string{"STYTCH_PROJECT_ID": "<unset>"}, "STYTCH_PROJECT_ID"},
		{"bad project", map[string]string{"STYTCH_PROJECT_ID": "proj-123"}, "STYTCH_PROJECT_ID"},
		{"missing secret", map[string]string{"STYTCH_SECRET": "<unset>"}, "STYTCH_SECRET"},
		{"empty secret", map[string]string{"STYTCH_SECRET": ""}, "STYTCH_SECRET"},
		{"live secret, test project", map[string]string{"STYTCH_SECRET": "secret-live-abc"}, "STYTCH_SECRET"},
		{"environment mismatch", map[string]string{"STYTCH_ENVIRONMENT": "live"}, "STYTCH_ENVIRONMENT"},
		{"environment mismatch live", map[string]string{"STYTCH_PROJECT_ID": "project-live-x", "STYTCH_SECRET": "s", "STYTCH_ENVIRONMENT": "test"}, "STYTCH_ENVIRONMENT"},
		{"bad environment", map[string]string{"STYTCH_ENVIRONMENT": "prod"}, "STYTCH_ENVIRONMENT"},
		{"bad base URL", map[string]string{"STYTCH_BASE_URL": "test.stytch.com"}, "STYTCH_BASE_URL"},
		{"base URL scheme", map[string]string{"STYTCH_BASE_URL": "ftp://x"}, "STYTCH_BASE_URL"},
		{"base URL credentials", map[string]string{"STYTCH_BASE_URL": "https://u:p@x"}, "STYTCH_BASE_URL"},
		{"bad redis scheme", map[string]string{"STYTCH_REDIS_URL": "http://localhost"}, "STYTCH_REDIS_URL"},
		{"bad REDIS_URL named", map[string]string{"REDIS_URL": "memcache://localhost"}, "REDIS_URL"},
		{"redis no host", map[string]string{"STYTCH_REDIS_URL": "redis://"}, "STYTCH_REDIS_URL"},
		{"bad redis db", map[string]string{"STYTCH_REDIS_DB": "-1"}, "STYTCH_REDIS_DB"},
		{"redis db not a number", map[string]string{"STYTCH_REDIS_DB": "one"}, "STYTCH_REDIS_DB"},
		{"bad redis ssl", map[string]string{"STYTCH_REDIS_SSL": "maybe"}, "STYTCH_REDIS_SSL"},
		{"bad backend", map[string]string{"STYTCH_CACHE_BACKEND": "memcached"}, "STYTCH_CACHE_BACKEND"},
		{"redis backend without URL", map[string]string{"STYTCH_CACHE_BACKEND": "redis"}, "STYTCH_CACHE_BACKEND"},
		{"tiered backend without URL", map[string]string{"STYTCH_CACHE_BACKEND": "tiered"}, "STYTCH_CACHE_BACKEND"},
		{"TTL zero", map[string]string{"STYTCH_CACHE_TTL": "0"}, "STYTCH_CACHE_TTL"},
		{"TTL negative", map[string]string{"STYTCH_CACHE_TTL": "-5"}, "STYTCH_CACHE_TTL"},
		{"TTL negative duration", map[string]string{"STYTCH_CACHE_TTL": "-5m"}, "STYTCH_CACHE_TTL"},
		{"TTL garbage", map[string]string{"STYTCH_CACHE_TTL": "five"}, "STYTCH_CACHE_TTL"},
		{"TTL NaN", map[string]string{"STYTCH_CACHE_TTL": "NaN"}, "STYTCH_CACHE_TTL"},
		{"TTL too long", map[string]string{"STYTCH_CACHE_TTL": "48h"}, "STYTCH_CACHE_TTL"},
		{"bad prefix", map[string]string{"STYTCH_CACHE_PREFIX": "a b"}, "STYTCH_CACHE_PREFIX"},
		{"bad log level", map[string]string{"STYTCH_LOG_LEVEL": "TRACE"}, "STYTCH_LOG_LEVEL"},
		{"bad sensitive flag", map[string]string{"STYTCH_LOG_SENSITIVE_DATA": "2"}, "STYTCH_LOG_SENSITIVE_DATA"},
		{"timeout zero", map[string]string{"STYTCH_REQUEST_TIMEOUT": "0"}, "STYTCH_REQUEST_TIMEOUT"},
		{"timeout garbage", map[string]string{"STYTCH_REQUEST_TIMEOUT": "10 s"}, "STYTCH_REQUEST_TIMEOUT"},
		{"timeout too long", map[string]string{"STYTCH_REQUEST_TIMEOUT": "1h"}, "STYTCH_REQUEST_TIMEOUT"},
		{"retries negative", map[string]string{"STYTCH_MAX_RETRIES": "-1"}, "STYTCH_MAX_RETRIES"},
		{"retries too many", map[string]string{"STYTCH_MAX_RETRIES": "100"}, "STYTCH_MAX_RETRIES"},
		{"retries fraction", map[string]string{"STYTCH_MAX_RETRIES": "1.5"}, "STYTCH_MAX_RETRIES"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := load(t, tc.env)
			require.Error(t, err)
			assert.Nil(t, s)
			assert.Contains(t, err.Error(), tc.variable+":")
			var se *echostytch.SettingError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, tc.variable, se.Variable)
			assert.NotContains(t, err.Error(), "SUPERSECRET")
		})
	}
}

func TestSettingsReportsEveryBadVariable(t *testing.T) {
	_, err := load(t, map[string]string{"STYTCH_CACHE_TTL": "x", "STYTCH_LOG_LEVEL": "x", "STYTCH_SECRET": "<unset>"})
	require.Error(t, err)
	var vars []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var se *echostytch.SettingError
		require.True(t, errors.As(e, &se))
		vars = append(vars, se.Variable)
	}
	assert.ElementsMatch(t, []string{"STYTCH_SECRET", "STYTCH_CACHE_TTL", "STYTCH_LOG_LEVEL"}, vars)
}

func TestSettingsRedaction(t *testing.T) {
	s, err := load(t, map[string]string{
		"STYTCH_REDIS_URL":      "rediss://user:REDISURLPASS@cache.example:6380/2?password=QUERYPASS",
		"STYTCH_REDIS_PASSWORD": "REDISPASSWORD",
	})
	require.NoError(t, err)
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "settings", s)
	slog.New(slog.NewTextHandler(&logs, nil)).Info("config", "settings", *s)
	js, err := json.Marshal(s)
	require.NoError(t, err)
	outputs := []string{s.String(), fmt.Sprint(s), fmt.Sprintf("%v|%+v|%#v|%s|%q", s, s, s, s, s),
		fmt.Sprintf("%v %+v %#v", *s, *s, *s), logs.String(), string(js)}
	for _, out := range outputs {
		assert.NotContains(t, out, "SUPERSECRET")
		assert.NotContains(t, out, "REDISURLPASS")
		assert.NotContains(t, out, "REDISPASSWORD")
		assert.NotContains(t, out, "QUERYPASS")
		assert.Contains(t, out, testProject)
		assert.Contains(t, out, "cache.example")
		assert.Contains(t, out, "REDACTED")
	}
	// Lone user name in the URL (treated as a password by some clients).
	assert.Equal(t, "redis://REDACTED@h:1", echostytch.RedactURL("redis://hunter2@h:1"))
	assert.Equal(t, "redis://h:1/0", echostytch.RedactURL("redis://h:1/0"))
	assert.Equal(t, "", echostytch.RedactURL(""))
	assert.False(t, strings.Contains(echostytch.RedactURL("redis://u:p%zz@h"), "p%zz"))
}

func TestLoadSettingsFromOSEnvironment(t *testing.T) {
	t.Setenv("STYTCH_PROJECT_ID", "project-live-os")
	t.Setenv("STYTCH_SECRET", "s")
	t.Setenv("STYTCH_CACHE_TTL", "1m")
	s, err := echostytch.LoadSettings(context.Background(), nil)
	require.NoError(t, err)
	assert.Equal(t, "live", s.Environment)
	assert.Equal(t, time.Minute, s.CacheTTL)
}
