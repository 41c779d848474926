package stytchtest

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// MaxBodyBytes bounds request bodies; larger bodies get 413.
const MaxBodyBytes = 64 << 10

const (
	pathAuthenticate = "/v1/b2b/sessions/authenticate"
	pathRevoke       = "/v1/b2b/sessions/revoke"
	pathSessions     = "/v1/b2b/sessions"
	pathJWKSPrefix   = "/v1/b2b/sessions/jwks/"
	pathPolicy       = "/v1/b2b/rbac/policy"
	pathOrgPolicy    = "/v1/b2b/rbac/organizations/"
)

type handlerFunc func(w http.ResponseWriter, r *http.Request, body []byte, arg string)

// route maps a path to its endpoint, method and handler; arg is the path
// parameter (project or organization ID).
func (s *Server) route(path string) (ep Endpoint, method string, h handlerFunc, arg string) {
	switch {
	case path == pathAuthenticate:
		return Authenticate, http.MethodPost, s.handleAuthenticate, ""
	case path == pathRevoke:
		return Revoke, http.MethodPost, s.handleRevoke, ""
	case path == pathSessions:
		return ListSessions, http.MethodGet, s.handleListSessions, ""
	case strings.HasPrefix(path, pathJWKSPrefix):
		return JWKS, http.MethodGet, s.handleJWKS, strings.TrimPrefix(path, pathJWKSPrefix)
	case path == pathPolicy:
		return RBACPolicy, http.MethodGet, s.handlePolicy, ""
	case strings.HasPrefix(path, pathOrgPolicy):
		return RBACOrgPolicy, http.MethodGet, s.handleOrgPolicy, strings.TrimPrefix(path, pathOrgPolicy)
	}
	return "", "", nil, ""
}

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			// A bug in the emulator: answer like Stytch's 500 rather than
			// crash the test binary.
			s.writeError(w, http.StatusInternalServerError, "internal_server_error",
				fmt.Sprintf("stytchtest: internal error: %v", v))
		}
	}()
	w.Header().Set("Cache-Control", "no-store")

	ep, method, h, arg := s.route(r.URL.Path)
	if h == nil {
		s.writeError(w, http.StatusNotFound, "route_not_found",
			fmt.Sprintf("The route %s %s does not exist.", r.Method, r.URL.Path))
		return
	}

	// Read the body before simulating faults: the server notices a client
	// that gives up only once the body has been consumed.
	body, readErr := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))

	if f, ok := s.countAndTakeFault(ep); ok && s.applyFault(w, r, f) {
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		s.writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("The method %s is not allowed on %s; use %s.", r.Method, r.URL.Path, method))
		return
	}
	if readErr != nil {
		s.writeError(w, http.StatusBadRequest, "bad_request", "The request body could not be read.")
		return
	}
	if len(body) > MaxBodyBytes {
		s.writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
			fmt.Sprintf("The request body exceeds %d bytes.", MaxBodyBytes))
		return
	}
	// Basic auth is required everywhere but the JWKS, where it is optional
	// (and checked when sent).
	if ep != JWKS || r.Header.Get("Authorization") != "" {
		if !s.authorized(r) {
			s.writeError(w, http.StatusUnauthorized, "unauthorized_credentials", "Unauthorized credentials.")
			return
		}
	}
	h(w, r, body, arg)
}

func (s *Server) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	u := subtle.ConstantTimeCompare([]byte(user), []byte(s.projectID))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(s.secret))
	return u&p == 1
}

// errorJSON is Stytch's error object (spec §4.1).
type errorJSON struct {
	StatusCode   int    `json:"status_code"`
	RequestID    string `json:"request_id"`
	ErrorType    string `json:"error_type"`
	ErrorMessage string `json:"error_message"`
	ErrorURL     string `json:"error_url"`
}

func (s *Server) errorBody(status int, errType, msg string) []byte {
	b, _ := json.Marshal(errorJSON{
		StatusCode:   status,
		RequestID:    newRequestID(),
		ErrorType:    errType,
		ErrorMessage: msg,
		ErrorURL:     fmt.Sprintf("https://stytch.com/docs/api/errors/%d", status),
	})
	return b
}

func (s *Server) writeError(w http.ResponseWriter, status int, errType, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(s.errorBody(status, errType, msg))
}

// writeOK writes a 200 whose body is fields plus request_id and
// status_code.
func writeOK(w http.ResponseWriter, fields map[string]any) {
	fields["request_id"] = newRequestID()
	fields["status_code"] = http.StatusOK
	b, err := json.Marshal(fields)
	if err != nil {
		http.Error(w, "stytchtest: encoding response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// decodeBody decodes a JSON object body. An empty body is an empty object.
func decodeBody(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after the JSON object")
	}
	return nil
}

const (
	minSessionMinutes = 5
	maxSessionMinutes = 527040
)

type authorizationCheck struct {
	OrganizationID string `json:"organization_id"`
	ResourceID     string `json:"resource_id"`
	Action         string `json:"action"`
}

type authenticateRequest struct {
	SessionToken           string                     `json:"session_token"`
	SessionJWT             string                     `json:"session_jwt"`
	SessionDurationMinutes *int32                     `json:"session_duration_minutes"`
	SessionCustomClaims    map[string]json.RawMessage `json:"session_custom_claims"`
	AuthorizationCheck     *authorizationCheck        `json:"authorization_check"`
}

func (s *Server) handleAuthenticate(w http.ResponseWriter, _ *http.Request, body []byte, _ string) {
	var req authenticateRequest
	if err := decodeBody(body, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, "bad_request", "The request body is not a valid authenticate request: "+err.Error())
		return
	}
	switch {
	case req.SessionToken != "" && req.SessionJWT != "":
		s.writeError(w, http.StatusBadRequest, "too_many_session_arguments",
			"Please include at most one of session_token, session_jwt, or intermediate_session_token in an authenticate request, not multiple.")
		return
	case req.SessionToken == "" && req.SessionJWT == "":
		s.writeError(w, http.StatusBadRequest, "bad_request", "Exactly one of session_token or session_jwt is required.")
		return
	}
	if d := req.SessionDurationMinutes; d != nil && (*d < minSessionMinutes || *d > maxSessionMinutes) {
		s.writeError(w, http.StatusBadRequest, "bad_request",
			fmt.Sprintf("session_duration_minutes must be between %d and %d.", minSessionMinutes, maxSessionMinutes))
		return
	}
	if c := req.AuthorizationCheck; c != nil && (c.OrganizationID == "" || c.ResourceID == "" || c.Action == "") {
		s.writeError(w, http.StatusBadRequest, "bad_request",
			"authorization_check requires organization_id, resource_id and action.")
		return
	}
	set, del, errType, msg := parseClaimUpdates(req.SessionCustomClaims)
	if errType != "" {
		s.writeError(w, http.StatusBadRequest, errType, msg)
		return
	}

	s.mu.Lock()
	var sess *session
	if req.SessionToken != "" {
		sess = s.sessions[s.tokens[req.SessionToken]]
	} else {
		id, jerr := s.verifyJWTLocked(req.SessionJWT)
		if jerr != nil {
			s.mu.Unlock()
			s.writeError(w, http.StatusBadRequest, jerr.errorType, jerr.message)
			return
		}
		sess = s.sessions[id]
	}
	m := (*member)(nil)
	o := (*organization)(nil)
	if sess != nil {
		m, o = s.members[sess.memberID], s.orgs[sess.orgID]
	}
	if !s.liveLocked(sess) || m == nil || o == nil {
		s.mu.Unlock()
		s.writeError(w, http.StatusNotFound, "session_not_found", "Session could not be found.")
		return
	}
	var verdict map[string]any
	if c := req.AuthorizationCheck; c != nil {
		if c.OrganizationID != sess.orgID {
			s.mu.Unlock()
			s.writeError(w, http.StatusForbidden, "session_authorization_tenancy_error",
				fmt.Sprintf("Subject organization_id %s does not match authZ request organization_id %s", sess.orgID, c.OrganizationID))
			return
		}
		roles := s.policy.grantingRoles(sess.roles, c.ResourceID, c.Action)
		if len(roles) == 0 {
			s.mu.Unlock()
			s.writeError(w, http.StatusForbidden, "session_authorization_error",
				"The Member is not authorized to perform the requested action on that resource.")
			return
		}
		verdict = map[string]any{"authorized": true, "granting_roles": roles}
	}

	// Apply custom claim updates on a copy, so an oversized result leaves
	// the session untouched.
	claims := map[string]any{}
	for k, v := range sess.customClaims {
		claims[k] = v
	}
	for _, k := range del {
		delete(claims, k)
	}
	for k, v := range set {
		claims[k] = v
	}
	if b, _ := json.Marshal(claims); len(b) > maxCustomClaimsBytes {
		s.mu.Unlock()
		s.writeError(w, http.StatusBadRequest, "custom_claims_too_large",
			fmt.Sprintf("Custom claims must not exceed %d bytes.", maxCustomClaimsBytes))
		return
	}
	sess.customClaims = claims
	now := s.stamp()
	sess.lastAccessed = now
	if d := req.SessionDurationMinutes; d != nil {
		sess.expires = now.Add(time.Duration(*d) * time.Minute)
	}
	resp := map[string]any{
		"session_token":  sess.token,
		"member_session": s.memberSessionJSONLocked(sess),
		"member":         m.wire(),
		"organization":   o.wire(),
	}
	if verdict != nil {
		resp["verdict"] = verdict
	}
	jwtClaims := s.claimsLocked(sess, s.now())
	key := s.currentKeyLocked()
	s.mu.Unlock()

	tok, err := signWith(key, jwtClaims)
	if err != nil {
		s.writeError(w, http.StatusInternalServerError, "internal_server_error", "No signing key is available.")
		return
	}
	resp["session_jwt"] = tok
	writeOK(w, resp)
}

// parseClaimUpdates splits session_custom_claims into keys to set and keys
// to delete (JSON null), dropping reserved names.
func parseClaimUpdates(in map[string]json.RawMessage) (set map[string]any, del []string, errType, msg string) {
	set = map[string]any{}
	for k, raw := range in {
		if strings.HasPrefix(k, "https://stytch.com/") {
			return nil, nil, "stytch_claims_in_custom_claims",
				fmt.Sprintf("The custom claim %q uses a reserved Stytch namespace.", k)
		}
		if slices.Contains(reservedClaims, k) {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, "bad_request", "session_custom_claims is not valid JSON."
		}
		if v == nil {
			del = append(del, k)
			continue
		}
		set[k] = v
	}
	return set, del, "", ""
}

type revokeRequest struct {
	MemberSessionID string `json:"member_session_id"`
	SessionToken    string `json:"session_token"`
	SessionJWT      string `json:"session_jwt"`
	MemberID        string `json:"member_id"`
}

func (s *Server) handleRevoke(w http.ResponseWriter, _ *http.Request, body []byte, _ string) {
	var req revokeRequest
	if err := decodeBody(body, &req); err != nil {
		s.writeError(w, http.StatusBadRequest, "bad_request", "The request body is not a valid revoke request: "+err.Error())
		return
	}
	n := 0
	for _, v := range []string{req.MemberSessionID, req.SessionToken, req.SessionJWT, req.MemberID} {
		if v != "" {
			n++
		}
	}
	switch {
	case n == 0:
		s.writeError(w, http.StatusBadRequest, "bad_request",
			"One of member_session_id, session_token, session_jwt or member_id is required.")
		return
	case n > 1:
		s.writeError(w, http.StatusBadRequest, "too_many_session_revoke_arguments",
			"Please include only one of member_session_id, session_token, session_jwt or member_id.")
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if req.MemberID != "" {
		if _, ok := s.members[req.MemberID]; !ok {
			s.writeError(w, http.StatusNotFound, "member_not_found", "Member could not be found.")
			return
		}
		for _, sess := range s.sessions {
			if sess.memberID == req.MemberID {
				sess.revoked = true
			}
		}
		writeOK(w, map[string]any{})
		return
	}
	id := req.MemberSessionID
	switch {
	case req.SessionToken != "":
		id = s.tokens[req.SessionToken]
	case req.SessionJWT != "":
		var jerr *jwtError
		id, jerr = s.verifyJWTLocked(req.SessionJWT)
		if jerr != nil {
			s.writeError(w, http.StatusBadRequest, jerr.errorType, jerr.message)
			return
		}
	}
	sess, ok := s.sessions[id]
	if !ok {
		s.writeError(w, http.StatusNotFound, "session_not_found", "Session could not be found.")
		return
	}
	sess.revoked = true
	writeOK(w, map[string]any{})
}

func (s *Server) handleListSessions(w http.ResponseWriter, r *http.Request, _ []byte, _ string) {
	q := r.URL.Query()
	orgID, memberID := q.Get("organization_id"), q.Get("member_id")
	if orgID == "" || memberID == "" {
		s.writeError(w, http.StatusBadRequest, "bad_request", "organization_id and member_id are required.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.orgs[orgID]; !ok {
		s.writeError(w, http.StatusNotFound, "organization_not_found", "Organization could not be found.")
		return
	}
	if m, ok := s.members[memberID]; !ok || m.orgID != orgID {
		s.writeError(w, http.StatusNotFound, "member_not_found", "Member could not be found.")
		return
	}
	var live []*session
	for _, sess := range s.sessions {
		if sess.memberID == memberID && s.liveLocked(sess) {
			live = append(live, sess)
		}
	}
	slices.SortFunc(live, func(a, b *session) int {
		if c := a.startedAt.Compare(b.startedAt); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	out := make([]memberSessionJSON, 0, len(live))
	for _, sess := range live {
		out = append(out, s.memberSessionJSONLocked(sess))
	}
	writeOK(w, map[string]any{"member_sessions": out})
}

func (s *Server) handleJWKS(w http.ResponseWriter, _ *http.Request, _ []byte, projectID string) {
	if projectID != s.projectID {
		s.writeError(w, http.StatusNotFound, "project_not_found", "Project could not be found.")
		return
	}
	s.mu.Lock()
	keys := s.jwksLocked()
	s.mu.Unlock()
	writeOK(w, map[string]any{"keys": keys})
}

func (s *Server) handlePolicy(w http.ResponseWriter, _ *http.Request, _ []byte, _ string) {
	s.mu.Lock()
	p := s.policy.clone()
	s.mu.Unlock()
	writeOK(w, map[string]any{"policy": p})
}

func (s *Server) handleOrgPolicy(w http.ResponseWriter, _ *http.Request, _ []byte, orgID string) {
	s.mu.Lock()
	_, ok := s.orgs[orgID]
	s.mu.Unlock()
	if !ok {
		s.writeError(w, http.StatusNotFound, "organization_not_found", "Organization could not be found.")
		return
	}
	writeOK(w, map[string]any{"org_policy": map[string]any{"roles": []Role{}}})
}
