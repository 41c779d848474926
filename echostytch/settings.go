package echostytch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sethvargo/go-envconfig"
)

// Defaults of the STYTCH_* environment variables.
const (
	DefaultCacheTTL       = 300 * time.Second
	DefaultCachePrefix    = "ayz_auth"
	DefaultLogLevel       = slog.LevelInfo
	DefaultRequestTimeout = 10 * time.Second
	DefaultMaxRetries     = 3
	// BaseURLTest and BaseURLLive are the Stytch API base URLs selected by
	// the environment when STYTCH_BASE_URL is unset.
	BaseURLTest = "https://test.stytch.com"
	BaseURLLive = "https://api.stytch.com"
)

// Environments.
const (
	EnvironmentTest = "test"
	EnvironmentLive = "live"
)

// Cache backends.
const (
	CacheMemory = "memory"
	CacheRedis  = "redis"
	CacheTiered = "tiered"
)

// Bounds enforced by LoadSettings.
const (
	maxCacheTTL       = 24 * time.Hour
	maxRequestTimeout = 5 * time.Minute
	maxMaxRetries     = 10
)

// Settings is the configuration read from the environment (design.md §4).
// Build it with LoadSettings. It prints (String, Format, LogValue,
// MarshalJSON) with the secret and any Redis password redacted, including a
// password inside RedisURL.
type Settings struct {
	// ProjectID is STYTCH_PROJECT_ID (required), e.g. "project-test-…";
	// "project-live-…" selects the live environment.
	ProjectID string
	// Secret is STYTCH_SECRET (required). Never printed.
	Secret string
	// Environment is STYTCH_ENVIRONMENT, "test" or "live"; by default
	// derived from ProjectID. A value that contradicts ProjectID is an
	// error.
	Environment string
	// BaseURL is STYTCH_BASE_URL, the Stytch API base URL without a
	// trailing slash (a custom domain or an emulator). Default BaseURLTest
	// or BaseURLLive according to Environment.
	BaseURL string
	// RedisURL is STYTCH_REDIS_URL, or REDIS_URL when STYTCH_REDIS_URL is
	// unset or empty: redis://, rediss://, valkey://, valkeys:// or unix://
	// (cluster seeds as repeated addr= query parameters). Empty means no
	// Redis.
	RedisURL string
	// RedisPassword is STYTCH_REDIS_PASSWORD, used when RedisURL has none.
	// Never printed.
	RedisPassword string
	// RedisDB is STYTCH_REDIS_DB (default 0), used when RedisURL has none.
	RedisDB int
	// RedisSSL is STYTCH_REDIS_SSL (default false): TLS to Redis.
	RedisSSL bool
	// CacheBackend is STYTCH_CACHE_BACKEND: "memory", "redis" or
	// "tiered". Default "redis" when RedisURL is set, else "memory".
	// "redis" and "tiered" require RedisURL.
	CacheBackend string
	// CacheTTL is STYTCH_CACHE_TTL: seconds ("300", "2.5") or a Go duration
	// ("5m"). Default 300s; at most 24h. Entries never outlive their
	// session.
	CacheTTL time.Duration
	// CachePrefix is STYTCH_CACHE_PREFIX, the key prefix in shared caches.
	// Default "ayz_auth".
	CachePrefix string
	// LogLevel is STYTCH_LOG_LEVEL: DEBUG, INFO, WARN (or WARNING), ERROR,
	// case-insensitive. Default INFO.
	LogLevel slog.Level
	// LogSensitiveData is STYTCH_LOG_SENSITIVE_DATA (default false): allow
	// member emails and IDs in logs. Tokens and secrets are never logged.
	LogSensitiveData bool
	// RequestTimeout is STYTCH_REQUEST_TIMEOUT per Stytch call: seconds
	// ("10", "0.5") or a Go duration. Default 10s; at most 5m.
	RequestTimeout time.Duration
	// MaxRetries is STYTCH_MAX_RETRIES (default 3, at most 10): retries of
	// idempotent failures within the request's deadline.
	MaxRetries int

	// redisURLVar names the variable RedisURL was read from
	// ("STYTCH_REDIS_URL" or "REDIS_URL"), for errors about it found after
	// LoadSettings (NewStack); empty when RedisURL was not loaded.
	redisURLVar string
}

// rawSettings receives the variables as strings, so that every parse error
// can name its variable (go-envconfig's errors name struct fields).
type rawSettings struct {
	ProjectID        string `env:"STYTCH_PROJECT_ID"`
	Secret           string `env:"STYTCH_SECRET"`
	Environment      string `env:"STYTCH_ENVIRONMENT"`
	BaseURL          string `env:"STYTCH_BASE_URL"`
	RedisURL         string `env:"STYTCH_REDIS_URL"`
	RedisURLFallback string `env:"REDIS_URL"`
	RedisPassword    string `env:"STYTCH_REDIS_PASSWORD"`
	RedisDB          string `env:"STYTCH_REDIS_DB"`
	RedisSSL         string `env:"STYTCH_REDIS_SSL"`
	CacheBackend     string `env:"STYTCH_CACHE_BACKEND"`
	CacheTTL         string `env:"STYTCH_CACHE_TTL"`
	CachePrefix      string `env:"STYTCH_CACHE_PREFIX"`
	LogLevel         string `env:"STYTCH_LOG_LEVEL"`
	LogSensitiveData string `env:"STYTCH_LOG_SENSITIVE_DATA"`
	RequestTimeout   string `env:"STYTCH_REQUEST_TIMEOUT"`
	MaxRetries       string `env:"STYTCH_MAX_RETRIES"`
}

// SettingError is a bad or missing environment variable. LoadSettings
// returns one per problem, joined with errors.Join; find them with
// errors.As. The message never contains a secret.
type SettingError struct {
	// Variable is the environment variable's name, e.g. "STYTCH_CACHE_TTL".
	Variable string
	// Problem says what is wrong with it.
	Problem string
}

// Error returns "echostytch: <variable>: <problem>".
func (e *SettingError) Error() string { return "echostytch: " + e.Variable + ": " + e.Problem }

// LoadSettings reads the STYTCH_* variables (and REDIS_URL) through lookuper
// with go-envconfig, applies the defaults and validates every value. A nil
// lookuper reads the process environment. An empty variable counts as unset.
// The error joins one *SettingError per bad variable.
func LoadSettings(ctx context.Context, lookuper envconfig.Lookuper) (*Settings, error) {
	if lookuper == nil {
		lookuper = envconfig.OsLookuper()
	}
	var raw rawSettings
	if err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: &raw, Lookuper: lookuper}); err != nil {
		return nil, fmt.Errorf("echostytch: reading the environment: %w", err)
	}
	var errs []error
	bad := func(variable, format string, args ...any) {
		errs = append(errs, &SettingError{Variable: variable, Problem: fmt.Sprintf(format, args...)})
	}
	trim := strings.TrimSpace
	s := &Settings{
		ProjectID:     trim(raw.ProjectID),
		Secret:        trim(raw.Secret),
		RedisPassword: raw.RedisPassword,
	}

	// Project, secret, environment.
	projectEnv := ""
	switch {
	case s.ProjectID == "":
		bad("STYTCH_PROJECT_ID", "is required")
	case strings.HasPrefix(s.ProjectID, "project-live-"):
		projectEnv = EnvironmentLive
	case strings.HasPrefix(s.ProjectID, "project-test-"):
		projectEnv = EnvironmentTest
	default:
		bad("STYTCH_PROJECT_ID", "%q must start with project-test- or project-live-", s.ProjectID)
	}
	if !printableASCII(s.ProjectID) {
		bad("STYTCH_PROJECT_ID", "contains invalid characters")
	}
	switch {
	case s.Secret == "":
		bad("STYTCH_SECRET", "is required")
	case !printableASCII(s.Secret):
		bad("STYTCH_SECRET", "contains invalid characters")
	case projectEnv == EnvironmentLive && strings.HasPrefix(s.Secret, "secret-test-"),
		projectEnv == EnvironmentTest && strings.HasPrefix(s.Secret, "secret-live-"):
		bad("STYTCH_SECRET", "is a secret of the other environment than STYTCH_PROJECT_ID (%s)", projectEnv)
	}
	if env := strings.ToLower(trim(raw.Environment)); env != "" {
		switch {
		case env != EnvironmentTest && env != EnvironmentLive:
			bad("STYTCH_ENVIRONMENT", "%q must be test or live", raw.Environment)
		case projectEnv != "" && env != projectEnv:
			bad("STYTCH_ENVIRONMENT", "%q contradicts STYTCH_PROJECT_ID, which is a %s project", env, projectEnv)
		}
		s.Environment = env
	} else {
		s.Environment = projectEnv
	}

	// Base URL.
	if v := trim(raw.BaseURL); v != "" {
		u, err := url.Parse(v)
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http"):
			bad("STYTCH_BASE_URL", "must be an absolute http(s) URL")
		case u.User != nil:
			bad("STYTCH_BASE_URL", "must not contain credentials")
		case u.RawQuery != "" || u.Fragment != "":
			bad("STYTCH_BASE_URL", "must not have a query or fragment")
		}
		s.BaseURL = strings.TrimRight(v, "/")
	} else if s.Environment == EnvironmentLive {
		s.BaseURL = BaseURLLive
	} else {
		s.BaseURL = BaseURLTest
	}

	// Redis.
	redisVar := "STYTCH_REDIS_URL"
	s.RedisURL = trim(raw.RedisURL)
	if s.RedisURL == "" {
		redisVar = "REDIS_URL"
		s.RedisURL = trim(raw.RedisURLFallback)
	}
	if s.RedisURL != "" {
		s.redisURLVar = redisVar
		u, err := url.Parse(s.RedisURL)
		if err != nil {
			bad(redisVar, "is not a valid URL")
		} else {
			switch u.Scheme {
			case "redis", "rediss", "valkey", "valkeys":
				if u.Host == "" && u.Query().Get("addr") == "" {
					bad(redisVar, "has no host")
				}
			case "unix":
				if u.Path == "" {
					bad(redisVar, "has no socket path")
				}
			default:
				bad(redisVar, "scheme %q must be redis, rediss, valkey, valkeys or unix", u.Scheme)
			}
		}
	}
	if v := trim(raw.RedisDB); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			bad("STYTCH_REDIS_DB", "%q must be a non-negative integer", v)
		}
		s.RedisDB = n
	}
	s.RedisSSL = parseBool(&errs, "STYTCH_REDIS_SSL", raw.RedisSSL)

	// Cache.
	switch v := strings.ToLower(trim(raw.CacheBackend)); v {
	case "":
		s.CacheBackend = CacheMemory
		if s.RedisURL != "" {
			s.CacheBackend = CacheRedis
		}
	case CacheMemory, CacheRedis, CacheTiered:
		s.CacheBackend = v
		if v != CacheMemory && s.RedisURL == "" {
			bad("STYTCH_CACHE_BACKEND", "%q needs STYTCH_REDIS_URL (or REDIS_URL)", v)
		}
	default:
		bad("STYTCH_CACHE_BACKEND", "%q must be memory, redis or tiered", raw.CacheBackend)
	}
	s.CacheTTL = parseSeconds(&errs, "STYTCH_CACHE_TTL", raw.CacheTTL, DefaultCacheTTL, maxCacheTTL)
	s.CachePrefix = trim(raw.CachePrefix)
	if s.CachePrefix == "" {
		s.CachePrefix = DefaultCachePrefix
	} else if !printableASCII(s.CachePrefix) || strings.ContainsAny(s.CachePrefix, " {}") {
		bad("STYTCH_CACHE_PREFIX", "%q must be printable ASCII without spaces or braces", s.CachePrefix)
	}

	// Logging, Stytch calls.
	switch v := strings.ToUpper(trim(raw.LogLevel)); v {
	case "":
		s.LogLevel = DefaultLogLevel
	case "DEBUG":
		s.LogLevel = slog.LevelDebug
	case "INFO":
		s.LogLevel = slog.LevelInfo
	case "WARN", "WARNING":
		s.LogLevel = slog.LevelWarn
	case "ERROR":
		s.LogLevel = slog.LevelError
	default:
		bad("STYTCH_LOG_LEVEL", "%q must be DEBUG, INFO, WARN or ERROR", raw.LogLevel)
	}
	s.LogSensitiveData = parseBool(&errs, "STYTCH_LOG_SENSITIVE_DATA", raw.LogSensitiveData)
	s.RequestTimeout = parseSeconds(&errs, "STYTCH_REQUEST_TIMEOUT", raw.RequestTimeout, DefaultRequestTimeout, maxRequestTimeout)
	s.MaxRetries = DefaultMaxRetries
	if v := trim(raw.MaxRetries); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxMaxRetries {
			bad("STYTCH_MAX_RETRIES", "%q must be an integer from 0 to %d", v, maxMaxRetries)
		}
		s.MaxRetries = n
	}

	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return s, nil
}

// parseSeconds reads plain seconds (fractions allowed) or a Go duration;
// the result must be in (0, maxD].
func parseSeconds(errs *[]error, variable, v string, def, maxD time.Duration) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return def
	}
	var d time.Duration
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f != f || f <= 0 || f > maxD.Seconds() { // f != f: NaN
			*errs = append(*errs, &SettingError{Variable: variable,
				Problem: fmt.Sprintf("%q must be more than 0 and at most %v", v, maxD)})
			return 0
		}
		d = time.Duration(f * float64(time.Second))
	} else if d, err = time.ParseDuration(v); err != nil {
		*errs = append(*errs, &SettingError{Variable: variable,
			Problem: fmt.Sprintf("%q must be seconds (e.g. 300, 2.5) or a duration (e.g. 5m)", v)})
		return 0
	}
	if d <= 0 || d > maxD {
		*errs = append(*errs, &SettingError{Variable: variable,
			Problem: fmt.Sprintf("%q must be more than 0 and at most %v", v, maxD)})
		return 0
	}
	return d
}

// parseBool accepts true/false, 1/0, yes/no, on/off, t/f (case-insensitive).
func parseBool(errs *[]error, variable, v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "", "false", "0", "no", "off", "f", "n":
		return false
	case "true", "1", "yes", "on", "t", "y":
		return true
	}
	*errs = append(*errs, &SettingError{Variable: variable, Problem: fmt.Sprintf("%q must be true or false", v)})
	return false
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

const redacted = "[REDACTED]"

// RedactURL returns rawURL with any password, a lone user name (which some
// Redis clients treat as a password) and any query parameter whose name
// mentions a password, secret or token replaced by "REDACTED". A string
// that does not parse as a URL becomes "[REDACTED]" whole.
func RedactURL(rawURL string) string {
	if rawURL == "" {
		return ""
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return redacted
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "REDACTED")
		} else {
			u.User = url.User("REDACTED")
		}
	}
	// Passwords in query parameters (e.g. ?password=) too.
	if q := u.Query(); len(q) > 0 {
		changed := false
		for k := range q {
			lk := strings.ToLower(k)
			if strings.Contains(lk, "pass") || strings.Contains(lk, "secret") || strings.Contains(lk, "token") {
				q[k] = []string{"REDACTED"}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

func secretMark(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// redactedView is the printable form of Settings.
type redactedView struct {
	ProjectID        string `json:"project_id"`
	Secret           string `json:"secret"`
	Environment      string `json:"environment"`
	BaseURL          string `json:"base_url"`
	RedisURL         string `json:"redis_url"`
	RedisPassword    string `json:"redis_password"`
	RedisDB          int    `json:"redis_db"`
	RedisSSL         bool   `json:"redis_ssl"`
	CacheBackend     string `json:"cache_backend"`
	CacheTTL         string `json:"cache_ttl"`
	CachePrefix      string `json:"cache_prefix"`
	LogLevel         string `json:"log_level"`
	LogSensitiveData bool   `json:"log_sensitive_data"`
	RequestTimeout   string `json:"request_timeout"`
	MaxRetries       int    `json:"max_retries"`
}

func (s Settings) view() redactedView {
	return redactedView{
		ProjectID: s.ProjectID, Secret: secretMark(s.Secret), Environment: s.Environment,
		BaseURL: RedactURL(s.BaseURL), RedisURL: RedactURL(s.RedisURL), RedisPassword: secretMark(s.RedisPassword),
		RedisDB: s.RedisDB, RedisSSL: s.RedisSSL, CacheBackend: s.CacheBackend, CacheTTL: s.CacheTTL.String(),
		CachePrefix: s.CachePrefix, LogLevel: s.LogLevel.String(), LogSensitiveData: s.LogSensitiveData,
		RequestTimeout: s.RequestTimeout.String(), MaxRetries: s.MaxRetries,
	}
}

// String renders the settings with the secret and Redis password redacted.
func (s Settings) String() string {
	v := s.view()
	return fmt.Sprintf("Settings{ProjectID:%s Secret:%s Environment:%s BaseURL:%s RedisURL:%s RedisPassword:%s "+
		"RedisDB:%d RedisSSL:%t CacheBackend:%s CacheTTL:%s CachePrefix:%s LogLevel:%s LogSensitiveData:%t "+
		"RequestTimeout:%s MaxRetries:%d}",
		v.ProjectID, v.Secret, v.Environment, v.BaseURL, v.RedisURL, v.RedisPassword, v.RedisDB, v.RedisSSL,
		v.CacheBackend, v.CacheTTL, v.CachePrefix, v.LogLevel, v.LogSensitiveData, v.RequestTimeout, v.MaxRetries)
}

// Format makes every fmt verb (%v, %+v, %#v, %s, %q) print the redacted
// String, so that a Settings never reveals its secrets through fmt.
func (s Settings) Format(f fmt.State, verb rune) {
	if verb == 'q' {
		fmt.Fprintf(f, "%q", s.String())
		return
	}
	fmt.Fprint(f, s.String())
}

// LogValue renders the settings for log/slog as a group, redacted.
func (s Settings) LogValue() slog.Value {
	v := s.view()
	return slog.GroupValue(
		slog.String("project_id", v.ProjectID), slog.String("secret", v.Secret),
		slog.String("environment", v.Environment), slog.String("base_url", v.BaseURL),
		slog.String("redis_url", v.RedisURL), slog.String("redis_password", v.RedisPassword),
		slog.Int("redis_db", v.RedisDB), slog.Bool("redis_ssl", v.RedisSSL),
		slog.String("cache_backend", v.CacheBackend), slog.Duration("cache_ttl", s.CacheTTL),
		slog.String("cache_prefix", v.CachePrefix), slog.String("log_level", v.LogLevel),
		slog.Bool("log_sensitive_data", v.LogSensitiveData), slog.Duration("request_timeout", s.RequestTimeout),
		slog.Int("max_retries", v.MaxRetries))
}

// MarshalJSON renders the settings redacted, so that dumping them as JSON
// (e.g. on a debug endpoint) does not leak the secret.
func (s Settings) MarshalJSON() ([]byte, error) { return json.Marshal(s.view()) }
