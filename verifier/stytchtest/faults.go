package stytchtest

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// Endpoint names an API endpoint, for [Server.Calls] and
// [Server.InjectFault].
type Endpoint string

// The endpoints the emulator serves.
const (
	// Authenticate is POST /v1/b2b/sessions/authenticate.
	Authenticate Endpoint = "sessions.authenticate"
	// Revoke is POST /v1/b2b/sessions/revoke.
	Revoke Endpoint = "sessions.revoke"
	// ListSessions is GET /v1/b2b/sessions.
	ListSessions Endpoint = "sessions.get"
	// JWKS is GET /v1/b2b/sessions/jwks/{project_id}.
	JWKS Endpoint = "sessions.jwks"
	// RBACPolicy is GET /v1/b2b/rbac/policy.
	RBACPolicy Endpoint = "rbac.policy"
	// RBACOrgPolicy is GET /v1/b2b/rbac/organizations/{organization_id}.
	RBACOrgPolicy Endpoint = "rbac.organization_policy"
)

// Fault describes a failure the server simulates on an endpoint, before
// authenticating the request. Fields combine in this order: Delay, then
// Hang, then ResetConnection, then Status/Body. A Fault with only Delay
// set slows the endpoint down and then serves the request normally.
type Fault struct {
	// Status is the HTTP status to answer with. With ErrorType (or a
	// default type for the status, e.g. too_many_requests for 429 and
	// internal_server_error for 500) the body is a Stytch error object.
	Status int
	// ErrorType is the error_type of the error body.
	ErrorType string
	// Body, when set, is sent verbatim instead of an error object, e.g. a
	// proxy's HTML 502 page. Without Status, the status is 200 (a garbled
	// success response). The Content-Type is application/json if Body
	// starts with '{' or '[', text/html otherwise.
	Body string
	// Delay holds the response back this long (or until the client gives
	// up or the server closes).
	Delay time.Duration
	// Hang blocks the request until the client gives up (e.g. its timeout
	// fires) or the server closes; nothing is ever written.
	Hang bool
	// ResetConnection breaks the connection. Without Status or Body the
	// connection is reset (TCP RST) before any byte of the response is
	// sent; with them, the status line, headers and half the body are sent
	// (Content-Length announcing the whole body) and the connection is
	// then closed, so the client fails while reading the body.
	ResetConnection bool
	// Times is how many requests the fault applies to; 0 means every
	// request until [Server.ClearFaults].
	Times int
}

// InjectFault queues a fault for endpoint. Faults of an endpoint apply in
// the order injected: the first one applies until its Times are used up
// (forever if Times is 0), then the next.
func (s *Server) InjectFault(endpoint Endpoint, f Fault) {
	if f.Times < 0 {
		f.Times = 0
	}
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.faults[endpoint] = append(s.faults[endpoint], &f)
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	clear(s.faults)
}

// Calls returns how many requests reached endpoint since the server
// started or [Server.ResetCalls], including those refused (bad
// credentials, bad input) or failed by a fault.
func (s *Server) Calls(endpoint Endpoint) int {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.calls[endpoint]
}

// ResetCalls sets every counter back to zero.
func (s *Server) ResetCalls() {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	clear(s.calls)
}

// countAndTakeFault counts a request to ep and returns the fault that
// applies to it, if any.
func (s *Server) countAndTakeFault(ep Endpoint) (Fault, bool) {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	s.calls[ep]++
	q := s.faults[ep]
	if len(q) == 0 {
		return Fault{}, false
	}
	f := q[0]
	if f.Times > 0 {
		f.Times--
		if f.Times == 0 {
			s.faults[ep] = q[1:]
		}
	}
	return *f, true
}

// applyFault simulates f and reports whether the request is finished.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request, f Fault) bool {
	if f.Delay > 0 {
		t := time.NewTimer(f.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		case <-s.closing:
			abortConn(w)
			return true
		}
	}
	if f.Hang {
		select {
		case <-r.Context().Done():
		case <-s.closing:
			abortConn(w)
		}
		return true
	}
	if f.ResetConnection {
		s.resetConn(w, f)
		return true
	}
	if f.Status == 0 && f.Body == "" {
		return false
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", contentTypeFor(f.Body))
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.Body))
		return true
	}
	errType, msg := defaultError(status)
	if f.ErrorType != "" {
		errType = f.ErrorType
	}
	s.writeError(w, status, errType, msg)
	return true
}

func contentTypeFor(body string) string {
	if b := strings.TrimSpace(body); strings.HasPrefix(b, "{") || strings.HasPrefix(b, "[") {
		return "application/json"
	}
	return "text/html; charset=utf-8"
}

// abortConn closes the request's connection without a response.
func abortConn(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

func (s *Server) resetConn(w http.ResponseWriter, f Fault) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if f.Status == 0 && f.Body == "" {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // Close sends RST
		}
		return
	}
	status := f.Status
	if status == 0 {
		status = http.StatusOK
	}
	body := f.Body
	ctype := contentTypeFor(body)
	if body == "" {
		errType, msg := defaultError(status)
		if f.ErrorType != "" {
			errType = f.ErrorType
		}
		body = string(s.errorBody(status, errType, msg))
		ctype = "application/json"
	}
	head := fmt.Sprintf("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		status, http.StatusText(status), ctype, len(body))
	_, _ = conn.Write([]byte(head + body[:len(body)/2]))
}

// defaultError returns Stytch's error type and message for a status.
func defaultError(status int) (errType, message string) {
	switch status {
	case http.StatusBadRequest:
		return "bad_request", "The request was malformed."
	case http.StatusUnauthorized:
		return "unauthorized_credentials", "Unauthorized credentials."
	case http.StatusForbidden:
		return "unauthorized_action", "The action is not authorized."
	case http.StatusNotFound:
		return "not_found", "The resource could not be found."
	case http.StatusTooManyRequests:
		return "too_many_requests", "Too many requests have been made."
	case http.StatusBadGateway:
		return "bad_gateway", "Bad gateway."
	case http.StatusServiceUnavailable:
		return "server_unavailable", "The server is temporarily unavailable."
	case http.StatusGatewayTimeout:
		return "gateway_timeout", "Gateway timeout."
	}
	if status >= 500 {
		return "internal_server_error", "Oops, something seems to have gone wrong."
	}
	return "bad_request", http.StatusText(status)
}
